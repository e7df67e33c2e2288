/**
 * Where idle fetches of one Postgres broker instance wait: per group, a generation counter and the
 * set of waiting fetches. A notification of the broker's LISTEN connection bumps the group's
 * generation and wakes its waiters at once when the message is ready now, or arms one unref'd timer
 * for the group when it is due later. A fetch notes the generation before its claim, so a
 * notification that arrives between the claim and the wait is never missed.
 */

/** Longest delay Node's timers take (longer ones fire at once). */
const MAX_TIMER_MS = 2_147_483_647;

/** One group's waiters. */
interface GroupWait {
  gen: number;
  readonly waiters: Set<() => void>;
  timer: NodeJS.Timeout | undefined;
  timerAt: number;
}

/** Waiting fetches of one broker instance, by group (entries are kept: they hold the generation). */
export class WaitHub {
  private readonly groups = new Map<string, GroupWait>();

  /** Current generation of a group (changes whenever it is woken). */
  gen(group: string): number {
    return this.groups.get(group)?.gen ?? 0;
  }

  /** Handles a `'<run_at> <group>'` notification payload. */
  notify(payload: string): void {
    const space = payload.indexOf(' ');
    if (space < 0) return;
    const at = Number(payload.slice(0, space));
    const group = payload.slice(space + 1);
    if (!Number.isFinite(at) || at <= Date.now() + 1) this.wake(group);
    else this.wakeAt(group, at);
  }

  /** Wakes every waiter of every group (the listener reconnected, or the broker closes). */
  wakeAll(): void {
    for (const group of [...this.groups.keys()]) this.wake(group);
  }

  /**
   * Waits until the group is woken, `ms` passed, or `signal` aborted. Resolves at once when the
   * generation is no longer `seen`.
   */
  wait(group: string, seen: number, ms: number, signal: AbortSignal | undefined): Promise<void> {
    const g = this.entry(group);
    if (g.gen !== seen || ms <= 0 || signal?.aborted === true) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        g.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, Math.min(ms, MAX_TIMER_MS));
      timer.unref();
      signal?.addEventListener('abort', done, { once: true });
      g.waiters.add(done);
    });
  }

  private entry(group: string): GroupWait {
    let g = this.groups.get(group);
    if (g === undefined) {
      g = { gen: 0, waiters: new Set(), timer: undefined, timerAt: Infinity };
      this.groups.set(group, g);
    }
    return g;
  }

  private wake(group: string): void {
    const g = this.entry(group);
    g.gen++;
    for (const w of [...g.waiters]) w();
  }

  private wakeAt(group: string, at: number): void {
    const g = this.entry(group);
    if (g.timer !== undefined && g.timerAt <= at) return;
    if (g.timer !== undefined) clearTimeout(g.timer);
    g.timerAt = at;
    g.timer = setTimeout(() => {
      g.timer = undefined;
      g.timerAt = Infinity;
      this.wake(group);
    }, Math.min(Math.max(0, at - Date.now()), MAX_TIMER_MS));
    g.timer.unref();
  }

  /** Clears every timer (close). */
  clear(): void {
    for (const g of this.groups.values()) if (g.timer !== undefined) clearTimeout(g.timer);
    this.wakeAll();
    this.groups.clear();
  }
}
