/**
 * The fetch loop of the Redis broker for a group on one shard: one fetch script call, and when it
 * finds nothing, a wait on the group's wake list (no polling) until a publish wakes it, the next
 * delayed message is due, a lease runs out, the wait ends or it is aborted. It keeps two hints per
 * group from the previous fetch: the group's token bucket ran empty (sleep until its next token
 * first), and the ready list was drained (block at once instead of running the script for an empty
 * answer). Sharded groups go through `./redis-sharded.ts`.
 *
 * One script call per idle wait: a wait that runs to the fetch's deadline and ends quietly (no
 * marker: nothing was published, retried or released for the group meanwhile, and the script said
 * no delayed message or lease deadline is due before it) returns `[]` without calling the script
 * again; the caller's next fetch starts with the script (which moves due delayed messages and
 * recovers expired leases) before it waits. A wait ended any other way (marker, the next event's
 * time, a connection problem, a short sleep, any wait of the capped pool on a Redis Cluster) is
 * followed by the script as before.
 */
import type { Delivery } from '../src/broker.js';
import { ConnectionError } from '../src/errors.js';
import type { WakeWaiter } from './redis-wake-hub.js';
import type { GroupKeys } from './redis-keys.js';
import type { ScriptedRedis } from './redis-scripts.js';
import { parseFetchReply } from './redis-values.js';
import type { Waits } from './redis-waits.js';

/** Least time a fetch waits for an unreachable Redis before it rejects with `ConnectionError`. */
const DISCONNECTED_WAIT_MS = 1000;
/** A drained-queue hint older than this (ms) is not used: the next fetch runs its script first. */
const DRAINED_HINT_MS = 1000;

/** What one fetch of a group asks for. */
export interface GroupFetch {
  group: string;
  /** The group's keys (shard 0). */
  keys: GroupKeys;
  /** Most time to wait in all (ms) and its deadline (epoch ms). */
  waitMs: number;
  deadline: number;
  signal: AbortSignal | undefined;
  /** One fetch script call (typed errors already). */
  script: () => Promise<unknown>;
}

/** The fetch loop of one broker, with the hints its previous fetches left per group. */
export class GroupFetcher {
  /** Groups whose last fetch drained the ready list, with what that fetch said about the next event. */
  private readonly drained = new Map<string, { at: number; nextEventMs: number }>();
  /** Groups whose last fetch emptied their rate-limit bucket: when the next token is due (epoch ms). */
  private readonly throttled = new Map<string, number>();

  /**
   * @param cmd the command connection (its status tells whether Redis is reachable)
   * @param waits the broker's waits (closing ends them)
   * @param pool the blocking connections idle fetches wait on
   */
  constructor(
    private readonly cmd: ScriptedRedis,
    private readonly waits: Waits,
    private readonly pool: WakeWaiter,
  ) {}

  /** Drops the rate-limit hint of `group` (after a purge). */
  forget(group: string): void {
    this.throttled.delete(group);
  }

  /**
   * Takes what one script call gives, waiting as described in the module comment; `[]` after the
   * deadline, on abort or on close. While Redis is unreachable it waits for the reconnect (up to the
   * deadline, at least 1 s) and then rejects with `ConnectionError`.
   */
  async fetch(f: GroupFetch): Promise<Delivery[]> {
    const { group, waitMs, deadline, signal } = f;
    // The previous fetch emptied the group's token bucket: sleep until its next token first.
    const tokenAt = this.throttled.get(group);
    if (tokenAt !== undefined) {
      this.throttled.delete(group);
      const ms = Math.min(tokenAt - Date.now(), waitMs);
      if (ms > 0) await this.waits.pause(ms, signal);
    }
    // The previous fetch of this group drained the ready list: block at once instead of running the
    // script for an empty answer (any publish since then left a wake marker; the sleep is bounded by
    // the next delayed message or lease deadline that script saw).
    const drained = this.drained.get(group);
    if (drained !== undefined) {
      this.drained.delete(group);
      const age = Date.now() - drained.at;
      if (waitMs > 0 && age < DRAINED_HINT_MS && this.cmd.status === 'ready') {
        const sleep = drained.nextEventMs >= 0 ? Math.max(0, drained.nextEventMs - age) + 1 : waitMs;
        const quiet = await this.pool.waitForWork(f.keys.wake, Math.min(waitMs, sleep), signal);
        if (quiet && sleep >= waitMs) return [];
      }
    }
    for (;;) {
      if (this.waits.closed || signal?.aborted) return [];
      if (this.cmd.status !== 'ready') {
        // Waits at least DISCONNECTED_WAIT_MS, so that a caller looping on errors cannot spin.
        const up = await this.waits.ready(this.cmd, Math.max(deadline - Date.now(), DISCONNECTED_WAIT_MS), signal);
        if (!up) {
          if (this.waits.closed || signal?.aborted) return [];
          throw new ConnectionError(`redis is not reachable (status ${this.cmd.status})`);
        }
      }
      const { deliveries, nextEventMs, throttleMs } = parseFetchReply(group, await f.script());
      if (deliveries.length > 0) {
        if (throttleMs >= 0) this.throttled.set(group, Date.now() + throttleMs);
        else if (nextEventMs >= -1) this.drained.set(group, { at: Date.now(), nextEventMs });
        return deliveries;
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) return [];
      if (throttleMs >= 0) {
        // Out of tokens: wake markers would not help (messages are there), a timer does.
        await this.waits.pause(Math.min(remaining, throttleMs + 1), signal);
        continue;
      }
      const toDeadline = nextEventMs < 0 || nextEventMs + 1 >= remaining;
      const quiet = await this.pool.waitForWork(f.keys.wake, toDeadline ? remaining : nextEventMs + 1, signal);
      // Waited to the deadline and nothing came: the answer is empty (the next fetch runs the script first).
      if (quiet && toDeadline) return [];
    }
  }
}
