/**
 * Queue depth on scrape: `broker.counts(group)` for each watched group, at most one call per group in
 * flight (a scrape that finds the previous call still pending does not start another), each bounded
 * by a timeout. A group whose counts did not arrive in time is left out of that scrape (no stale
 * numbers) and counted in an error counter.
 */
import type { Broker, QueueCounts } from '../src/broker.js';

/** A broker and the groups to watch on it. */
export interface WatchedQueues {
  /** The broker to ask. */
  broker: Broker;
  /** The groups (read at every scrape). */
  groups: () => ReadonlyArray<string>;
}

/** The result of one group's counts: its numbers, or why there are none. */
export type DepthResult = { group: string; counts: QueueCounts } | { group: string; error: 'timeout' | 'error' };

/** Reads queue depths with bounded cost. */
export class DepthReader {
  private readonly watched: WatchedQueues[] = [];
  private readonly pending = new Map<string, Promise<QueueCounts>>();

  /** @param timeoutMs longest wait for one group's counts in a scrape */
  constructor(private readonly timeoutMs: number) {}

  /** Watches `groups` on `broker` (a group watched on two brokers is read from the first). */
  watch(queues: WatchedQueues): void {
    this.watched.push(queues);
  }

  /** The counts of every watched group, each within the timeout. */
  async read(): Promise<DepthResult[]> {
    const seen = new Map<string, Broker>();
    for (const w of this.watched) for (const g of w.groups()) if (!seen.has(g)) seen.set(g, w.broker);
    if (seen.size === 0) return [];
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.timeoutMs);
      timer.unref();
    });
    try {
      return await Promise.all([...seen].map(([group, broker]) => this.one(group, broker, timeout)));
    } finally {
      clearTimeout(timer);
    }
  }

  private async one(group: string, broker: Broker, timeout: Promise<'timeout'>): Promise<DepthResult> {
    let call = this.pending.get(group);
    if (call === undefined) {
      call = broker.counts(group);
      this.pending.set(group, call);
      const forget = (): void => {
        if (this.pending.get(group) === call) this.pending.delete(group);
      };
      call.then(forget, forget);
    }
    try {
      const out = await Promise.race([call, timeout]);
      return out === 'timeout' ? { group, error: 'timeout' } : { group, counts: out };
    } catch {
      return { group, error: 'error' };
    }
  }
}
