/**
 * Idle fetches of the Redis broker on a single node: ONE blocking connection per broker, whatever
 * the number of groups. It runs a multi-key `BLPOP wake1 wake2 … timeout` over the wake lists of
 * every fetch waiting at that moment (any group, any shard); the key it returns says which waiter a
 * marker is for. A waiter joining (its key not in the current BLPOP) or leaving ends the current
 * BLPOP with `CLIENT UNBLOCK` (sent through the command connection) and the hub blocks again on the
 * new set of keys. Changes are coalesced: the key set is checked once per event-loop tick, the
 * unblock is sent once per BLPOP, and the next BLPOP takes every change made until its reply
 * arrived, so a burst of 1 000 groups going idle costs a few re-blocks, not 1 000. After a wake,
 * one script on the same connection pops a marker of every other waiting key that has one
 * ({@link SWEEP}), so a burst of publishes to many groups wakes them in one round trip instead of
 * one BLPOP each. One group alone costs what a per-wait connection cost: its wait issues the BLPOP
 * at once (no other waiter: no unblock), and the hub stops blocking when it has no waiter.
 *
 * Deadlines stay client-side: every waiter has its own timer (the time until its group's next
 * delayed message or lease deadline, as the fetch script reported, or its `waitMs`), which ends
 * that waiter alone, without a round trip, and reports whether it ended quietly (its timer, while a
 * BLPOP covering its key was in flight: no marker for it arrived), so that a fetch whose wait ran to
 * its deadline returns empty without one more script call. The server's BLPOP timeout is a liveness bound
 * ({@link HUB_BLOCK_MS}); a BLPOP not answered well after it means a hung connection, dropped and
 * reconnected. The connection never resends a command after a reconnect (a replayed BLPOP would eat
 * a marker later); a dropped connection ends the BLPOP and the hub blocks again once it is back.
 * Meanwhile the waiters still end by their timers and their fetch scripts run as usual.
 *
 * Markers are not lost for work: the key of a waiter that left by its timer or by a marker stays in
 * the BLPOP for a grace period ({@link LEAVE_GRACE_MS}, so that the usual leave-and-come-back of a
 * fetch loop — script, then wait again — costs no re-block); a marker popped for a key with no waiter is remembered for
 * {@link SPARE_MS} and ends at once the next wait on that key (whose fetch script then takes the
 * work or tops the markers up again, see `top_up_wake` in `./redis-lua.ts`). An aborted waiter's
 * key leaves the BLPOP at the next re-block, so that other processes' waiters are not robbed.
 *
 * Bound: one blocking connection (`<connectionName>:block`) per broker, plus the command
 * connection: two connections per broker for any number of groups and shards (measured: 2 for 1,
 * 10, 100 and 1 000 groups in one server; before, 1 + one per idle group). On a Redis Cluster a
 * multi-key BLPOP must stay in one slot and groups hash to different slots, so the broker uses the
 * capped pool of `./redis-blocking.ts` there instead: at most `clusterBlockingConnections` (8)
 * blocking Cluster clients, waits beyond them re-fetch after pauses of at most 250 ms.
 */
import type { RedisClient } from './redis-cluster.js';
import { failureText, shutdown, type RedisBrokerLogger, type RedisConnector } from './redis-connection.js';
import { guarded, withTimeout } from './redis-guarded.js';
import type { Waits } from './redis-waits.js';

/** Where idle fetches wait for a wake marker (the hub on a node, the capped pool on a cluster). */
export interface WakeWaiter {
  /**
   * Waits up to `ms` for a wake marker on `wakeKey`; returns early on a marker, abort or close.
   * Resolves `true` only when the wait ran its whole `ms` blocked on the wake list with no marker
   * seen (a quiet timeout: nothing was pushed to the list meanwhile, or its marker is still there
   * for the next wait), `false` otherwise (marker, abort, close, a short or overflow sleep, a
   * connection problem). Never rejects: the caller runs the fetch script next, which reports
   * connection problems.
   */
  waitForWork(wakeKey: string, ms: number, signal: AbortSignal | undefined): Promise<boolean>;
  /** Disconnects the blocking connections (after `waits.close()`). */
  close(): void;
}

/** Waits shorter than this sleep client-side instead of joining the BLPOP. */
const MIN_BLOCK_MS = 20;
/** Server timeout of the hub's BLPOP: a liveness bound (waiters have their own timers). */
export const HUB_BLOCK_MS = 5000;
/** A BLPOP not answered this long after its timeout: the connection is dropped (hung TCP). */
const HUNG_CONNECTION_MS = 10_000;
/** How long the key of a waiter that left by its timer stays in the BLPOP (it usually comes back). */
const LEAVE_GRACE_MS = 200;
/** How long a marker popped for a key without a waiter ends the next wait on that key at once. */
const SPARE_MS = 2000;
/** Pause after an unexpected blocking error with a healthy connection (no busy loop). */
const ERROR_PAUSE_MS = 250;

/** Pops one marker of each key that has one; returns their 1-based positions (single node only: keys of many slots). */
const SWEEP = `local out = {}
for i = 1, #KEYS do
  if redis.call('LPOP', KEYS[i]) then out[#out + 1] = i end
end
return out`;

/** One idle fetch waiting in the hub. */
interface Waiter {
  readonly key: string;
  /**
   * Ends the wait (`urgent` false: by its timer or a marker, its key may linger; true: abort or
   * close); `quiet`: by its timer while a BLPOP covering its key was in flight.
   */
  end(urgent: boolean, quiet?: boolean): void;
}

/** The single blocking connection of one broker and the waiters it serves. */
export class WakeHub implements WakeWaiter {
  /** Waiters by wake key, oldest first. */
  private readonly byKey = new Map<string, Set<Waiter>>();
  /** Keys whose last waiter left by its timer or a marker, still blocked on: since when (epoch ms). */
  private readonly lingering = new Map<string, number>();
  /** Markers popped for keys that had no waiter: when (epoch ms). */
  private readonly spare = new Map<string, number>();
  private conn: RedisClient | undefined;
  /** `CLIENT ID` of the current connection (unknown until asked after each (re)connect). */
  private clientId: number | undefined;
  /** Keys of the BLPOP in flight (undefined: none). */
  private blocked: ReadonlySet<string> | undefined;
  /** Whether `CLIENT UNBLOCK` was sent for the BLPOP in flight. */
  private unblockSent = false;
  private running = false;
  /** Cleared when the sweep script is refused (scripts disabled by ACL): one wake per BLPOP then. */
  private sweeps = true;
  /** A check of the key set is scheduled for this tick / after the grace period. */
  private checkSoon = false;
  private graceTimer: NodeJS.Timeout | undefined;
  /** Ends the current error pause or reconnect wait of the loop (on close). */
  private readonly loopAbort = new AbortController();

  /**
   * @param connector makes the blocking connection
   * @param cmd the command connection (sends `CLIENT UNBLOCK`)
   * @param waits the broker's waits (ended on close)
   * @param logger receives warnings of failed waits
   * @param opTimeout bound (ms) of `CLIENT ID` on the blocking connection
   */
  constructor(
    private readonly connector: RedisConnector,
    private readonly cmd: RedisClient,
    private readonly waits: Waits,
    private readonly logger: RedisBrokerLogger | undefined,
    private readonly opTimeout: number,
  ) {}

  /** Number of blocking connections open (0 or 1). */
  get connections(): number {
    return this.conn === undefined ? 0 : 1;
  }

  /** @inheritdoc */
  close(): void {
    this.loopAbort.abort();
    if (this.graceTimer) clearTimeout(this.graceTimer);
    this.lingering.clear();
    for (const set of [...this.byKey.values()]) for (const w of [...set]) w.end(true);
    if (this.conn) shutdown(this.conn);
  }

  /** @inheritdoc */
  waitForWork(wakeKey: string, ms: number, signal: AbortSignal | undefined): Promise<boolean> {
    if (ms < MIN_BLOCK_MS) return this.waits.pause(ms, signal).then(() => false);
    if (this.waits.closed || signal?.aborted) return Promise.resolve(false);
    const spareAt = this.spare.get(wakeKey);
    if (spareAt !== undefined) {
      this.spare.delete(wakeKey);
      if (Date.now() - spareAt < SPARE_MS) return Promise.resolve(false);
    }
    return new Promise<boolean>((resolve) => {
      let done = false;
      const waiter: Waiter = {
        key: wakeKey,
        end: (urgent, quiet = false) => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          unregister();
          this.remove(waiter, urgent);
          resolve(quiet);
        },
      };
      const onAbort = (): void => waiter.end(true);
      const unregister = this.waits.onClose(onAbort);
      // Quiet only when the BLPOP in flight covers the key: a marker pushed since it was issued
      // would have been popped and delivered to this waiter (a waiter still waiting saw none).
      const timer = setTimeout(() => waiter.end(false, this.blocked?.has(wakeKey) === true && this.conn?.status === 'ready'), ms);
      timer.unref();
      signal?.addEventListener('abort', onAbort, { once: true });
      let set = this.byKey.get(wakeKey);
      if (set === undefined) this.byKey.set(wakeKey, (set = new Set()));
      set.add(waiter);
      this.lingering.delete(wakeKey);
      if (!this.blocked?.has(wakeKey)) this.schedule();
    });
  }

  /** Takes `w` out; its key leaves the BLPOP at the next check (after the grace period when not urgent). */
  private remove(w: Waiter, urgent: boolean): void {
    const set = this.byKey.get(w.key);
    if (set === undefined || !set.delete(w)) return;
    if (set.size > 0) return;
    this.byKey.delete(w.key);
    if (this.waits.closed) return;
    if (urgent) {
      this.lingering.delete(w.key);
      this.schedule();
    } else {
      this.lingering.set(w.key, Date.now());
      this.armGrace();
    }
  }

  /** Drops the keys that lingered past the grace period (then checks the key set) and re-arms. */
  private armGrace(): void {
    if (this.graceTimer !== undefined) return;
    this.graceTimer = setTimeout(() => {
      this.graceTimer = undefined;
      const now = Date.now();
      for (const [k, at] of this.lingering) if (now - at >= LEAVE_GRACE_MS) this.lingering.delete(k);
      if (this.lingering.size > 0) this.armGrace();
      this.schedule();
    }, LEAVE_GRACE_MS);
    this.graceTimer.unref();
  }

  /** The keys the BLPOP should cover: every waiter's, and the lingering ones. */
  private desiredKeys(): string[] {
    return this.lingering.size === 0 ? [...this.byKey.keys()] : [...this.byKey.keys(), ...this.lingering.keys()];
  }

  /** Checks the key set once this tick's changes are in (one check for a burst of joins). */
  private schedule(): void {
    if (this.checkSoon) return;
    this.checkSoon = true;
    setImmediate(() => {
      this.checkSoon = false;
      this.check();
    });
  }

  /** Starts the loop, or ends the BLPOP in flight when its keys are not the waiters' keys. */
  private check(): void {
    if (this.waits.closed) return;
    if (!this.running) {
      if (this.byKey.size > 0) void this.loop();
      return;
    }
    const blocked = this.blocked;
    if (blocked === undefined || this.unblockSent || sameKeys(blocked, this.byKey, this.lingering)) return;
    this.unblockSent = true;
    const conn = this.conn;
    const id = this.clientId;
    if (conn === undefined) return;
    if (id !== undefined && this.cmd.status === 'ready') {
      this.cmd.client('UNBLOCK', id).catch(() => conn.disconnect(true));
    } else {
      conn.disconnect(true);
    }
  }

  /** Blocks on the waiters' keys, again and again, while there are waiters. */
  private async loop(): Promise<void> {
    this.running = true;
    try {
      while (!this.waits.closed && this.byKey.size > 0) {
        const conn = this.connection();
        if (conn.status !== 'ready' || this.clientId === undefined) {
          if (!(await this.prepare(conn))) continue;
        }
        if (this.waits.closed || this.byKey.size === 0) break;
        const keys = this.desiredKeys();
        this.blocked = new Set(keys);
        this.unblockSent = false;
        try {
          const key = await this.blpop(conn, keys);
          if (key !== undefined) {
            this.deliver(key);
            this.blocked = undefined;
            await this.sweep(conn);
          }
        } catch (err) {
          if (this.waits.closed) break;
          this.logger?.warn('redis broker blocking wait failed', { error: failureText(err, this.opTimeout) });
          this.blocked = undefined;
          if (conn.status === 'ready') await this.waits.pause(ERROR_PAUSE_MS, this.loopAbort.signal);
        } finally {
          this.blocked = undefined;
        }
      }
    } finally {
      this.running = false;
      this.blocked = undefined;
    }
    // A waiter may have joined while the loop was ending.
    if (!this.waits.closed && this.byKey.size > 0) this.schedule();
  }

  /**
   * Waits for the connection and asks its `CLIENT ID`; false when it is not there yet (the loop then
   * tries again: `waits.ready` waits for the reconnect with backoff, never spins).
   */
  private async prepare(conn: RedisClient): Promise<boolean> {
    if (conn.status !== 'ready' && !(await this.waits.ready(conn, HUB_BLOCK_MS, this.loopAbort.signal))) return false;
    try {
      const id = await withTimeout(conn.client('ID'), this.opTimeout, () => conn.disconnect(true));
      this.clientId = id === undefined ? undefined : Number(id);
      return this.clientId !== undefined;
    } catch (err) {
      if (!this.waits.closed) this.logger?.warn('redis broker blocking wait failed', { error: failureText(err, this.opTimeout) });
      if (conn.status === 'ready') await this.waits.pause(ERROR_PAUSE_MS, this.loopAbort.signal);
      return false;
    }
  }

  /**
   * One BLPOP over `keys`: the key a marker was popped from, or undefined (timeout, `CLIENT UNBLOCK`,
   * dropped connection).
   */
  private async blpop(conn: RedisClient, keys: string[]): Promise<string | undefined> {
    const reply = await guarded(conn, conn.blpop(keys, HUB_BLOCK_MS / 1000), HUB_BLOCK_MS + HUNG_CONNECTION_MS);
    return reply === null || reply === undefined ? undefined : reply[0];
  }

  /**
   * After a wake, takes one marker of every other waiting key that has one, in one round trip (a
   * burst of publishes to many groups wakes them all at once instead of one BLPOP each).
   */
  private async sweep(conn: RedisClient): Promise<void> {
    const keys = [...this.byKey.keys()];
    if (keys.length === 0 || !this.sweeps) return;
    let reply: unknown;
    try {
      reply = await guarded(conn, conn.eval(SWEEP, keys.length, ...keys), this.opTimeout);
    } catch (err) {
      // A refused script (no connection problem: that ends in `guarded`) would fail every time.
      this.sweeps = false;
      this.logger?.warn('redis broker wake sweep failed; each blocking wait now wakes one group', { error: failureText(err, this.opTimeout) });
      return;
    }
    if (!Array.isArray(reply)) return;
    for (const i of reply) {
      const key = keys[Number(i) - 1];
      if (key !== undefined) this.deliver(key);
    }
  }

  /** Wakes the oldest waiter of `key`, or keeps the marker for the next wait on it. */
  private deliver(key: string): void {
    const first = this.byKey.get(key)?.values().next().value;
    if (first !== undefined) {
      first.end(false);
      return;
    }
    const now = Date.now();
    for (const [k, at] of this.spare) if (now - at >= SPARE_MS) this.spare.delete(k);
    this.spare.set(key, now);
  }

  /** The blocking connection, made on first use. */
  private connection(): RedisClient {
    if (this.conn !== undefined) return this.conn;
    const redis = this.connector.create('block', {
      enableAutoPipelining: false,
      // A blocking command must not be replayed after a reconnect (it would eat a wake marker later).
      autoResendUnfulfilledCommands: false,
      // The hub bounds its own waits; never fail a queued command because of the retry count.
      maxRetriesPerRequest: null,
      // No command timeout here (one given in the connection options included): it would cut BLPOP.
      commandTimeout: undefined,
    });
    redis.on('close', () => {
      this.clientId = undefined;
    });
    this.conn = redis;
    return redis;
  }
}

/** Whether the BLPOP's keys are exactly the waiters' and lingering keys (two disjoint maps). */
function sameKeys(blocked: ReadonlySet<string>, waiting: ReadonlyMap<string, unknown>, lingering: ReadonlyMap<string, unknown>): boolean {
  if (blocked.size !== waiting.size + lingering.size) return false;
  for (const k of waiting.keys()) if (!blocked.has(k)) return false;
  for (const k of lingering.keys()) if (!blocked.has(k)) return false;
  return true;
}
