/**
 * Flow control of the in-memory broker: priorities, fair dispatch between keys, per-key concurrency,
 * per-key and per-group rate limits, key back-off. A group gets this state only once a message with
 * a priority or key arrives or a fetch asks for a limit; until then the broker's plain ready list is
 * used and nothing here costs anything.
 *
 * Ready messages live in lanes, one per (priority level, key); the keyless messages of a level share
 * one lane. Each level has a ring of its non-empty lanes, served round-robin (a lane that gives a
 * message goes to the back of its ring), and levels are served strictly, highest first: one take is
 * O(levels) = O(1). A lane whose key may not run now (backed off, at its concurrency bound, out of
 * tokens) is parked on its key: until a timer (back-off, next token) or until a delivery of the key
 * settles (concurrency), then it rejoins its ring.
 */
import type { FetchLimits, RateLimit, WaitReason } from '../src/broker.js';
import { Deque } from '../src/deque.js';
import { DEFAULT_PRIORITY, MAX_PRIORITY, TokenBucket } from '../src/limits.js';

/** What the flow state needs of a message entry. */
export interface FlowEntry {
  /** Priority level. */
  level: number;
  /** Key, if any. */
  key: string | undefined;
  /** Counted in its key's running deliveries (released when it settles). */
  counted: boolean;
}

/** A queue of ready messages of one (level, key). */
class Lane<E extends FlowEntry> {
  readonly items = new Deque<E>();
  /** In its level's ring (or parked): it has items and is known to the dispatcher. */
  queued = false;

  constructor(
    readonly level: number,
    readonly owner: KeyState<E> | undefined,
  ) {}
}

/** Per-key state: running deliveries, rate bucket, back-off, parked lanes. */
class KeyState<E extends FlowEntry> {
  running = 0;
  bucket: TokenBucket | undefined;
  backoffUntil = 0;
  readonly lanes: Array<Lane<E> | undefined> = [];
  parked: Array<Lane<E>> = [];
  timer: NodeJS.Timeout | undefined;
  timerAt = Infinity;

  constructor(readonly name: string) {}
}

/** Resolved rate limit (burst filled in). */
function full(r: RateLimit): Required<RateLimit> {
  return { limit: r.limit, periodMs: r.periodMs, burst: r.burst ?? r.limit };
}

/** The flow-controlled ready set of one group. */
export class FlowState<E extends FlowEntry> {
  /** Ready messages held in lanes. */
  size = 0;
  private readonly rings: Array<Deque<Lane<E>>> = Array.from({ length: MAX_PRIORITY + 1 }, () => new Deque<Lane<E>>());
  private readonly plain: Array<Lane<E> | undefined> = [];
  private readonly keys = new Map<string, KeyState<E>>();
  private bucket: TokenBucket | undefined;
  /** Timer that wakes waiting fetches when the group's next token is due. */
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;

  /** @param wake called when parked messages may be taken again */
  constructor(private readonly wake: () => void) {}

  /** Adds a ready message at the back (`front`: at the head, for redeliveries) of its lane. */
  add(entry: E, front: boolean): void {
    const lane = this.lane(entry.level, entry.key);
    if (front) lane.items.unshift(entry);
    else lane.items.push(entry);
    this.size++;
    if (!lane.queued) {
      lane.queued = true;
      this.rings[lane.level]?.push(lane);
    }
  }

  /** Takes up to `max` messages by priority, keys round-robin, within the limits of `flow`. */
  take(max: number, flow: FetchLimits | undefined, now: number): E[] {
    let allowed = max;
    let bucket: TokenBucket | undefined;
    if (flow?.rateLimit) {
      bucket = this.groupBucket(flow.rateLimit, now);
      allowed = bucket.available(now, max);
    }
    const out: E[] = [];
    for (let level = MAX_PRIORITY; level >= 0 && out.length < allowed; level--) {
      const ring = this.rings[level] as Deque<Lane<E>>;
      while (out.length < allowed && ring.length > 0) {
        const lane = ring.shift() as Lane<E>;
        const ks = lane.owner;
        if (ks !== undefined) {
          const blockedMs = this.blockedFor(ks, flow, now);
          if (blockedMs !== 0) {
            this.park(ks, lane, blockedMs, now);
            continue;
          }
        }
        const entry = lane.items.shift() as E;
        this.size--;
        if (ks !== undefined) {
          ks.running++;
          entry.counted = true;
          ks.bucket?.take(1);
        }
        out.push(entry);
        if (lane.items.length > 0) ring.push(lane);
        else lane.queued = false;
      }
    }
    if (bucket !== undefined) {
      bucket.take(out.length);
      if (this.size > 0 && out.length < max) this.armGroupTimer(bucket.nextInMs(now), now);
    }
    return out;
  }

  /** A counted delivery of `entry`'s key settled (ack, retry, release, dead letter, lease expiry). */
  release(entry: E): void {
    if (!entry.counted) return;
    entry.counted = false;
    const ks = entry.key === undefined ? undefined : this.keys.get(entry.key);
    if (ks === undefined) return;
    ks.running--;
    if (ks.parked.length > 0 && ks.timer === undefined) this.unpark(ks);
    else this.maybeForget(ks);
  }

  /** Gives no message of `key` for `ms`. */
  backoff(key: string, ms: number, now: number): void {
    const ks = this.keyState(key);
    ks.backoffUntil = Math.max(ks.backoffUntil, now + ms);
  }

  /**
   * Why ready messages of `key` (undefined: keyless) are held back now, as the last take found:
   * the key backed off, its lanes parked (on concurrency, or until its next token), or the group's
   * bucket empty. `null`: nothing holds them.
   */
  waitReason(key: string | undefined, now: number): WaitReason | null {
    const ks = key === undefined ? undefined : this.keys.get(key);
    if (ks !== undefined && key !== undefined) {
      if (ks.backoffUntil > now) return { reason: 'key-paused', key, until: ks.backoffUntil };
      if (ks.parked.length > 0) return ks.timer === undefined ? { reason: 'key-concurrency', key } : { reason: 'key-rate-limit', key, until: ks.timerAt };
    }
    if (this.bucket !== undefined && this.bucket.available(now, 1) < 1) return { reason: 'rate-limit', until: now + this.bucket.nextInMs(now) };
    return null;
  }

  /** Stops the timers (group purged). */
  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    for (const ks of this.keys.values()) if (ks.timer) clearTimeout(ks.timer);
  }

  private lane(level: number, key: string | undefined): Lane<E> {
    const lv = level >= 0 && level <= MAX_PRIORITY ? level : DEFAULT_PRIORITY;
    if (key === undefined) {
      let lane = this.plain[lv];
      if (lane === undefined) this.plain[lv] = lane = new Lane<E>(lv, undefined);
      return lane;
    }
    const ks = this.keyState(key);
    let lane = ks.lanes[lv];
    if (lane === undefined) ks.lanes[lv] = lane = new Lane<E>(lv, ks);
    return lane;
  }

  private keyState(key: string): KeyState<E> {
    let ks = this.keys.get(key);
    if (ks === undefined) {
      ks = new KeyState<E>(key);
      this.keys.set(key, ks);
    }
    return ks;
  }

  private groupBucket(rate: RateLimit, now: number): TokenBucket {
    if (this.bucket === undefined) this.bucket = new TokenBucket(full(rate), now);
    else this.bucket.setRate(full(rate));
    return this.bucket;
  }

  /** 0 when `ks` may run a message now; else ms until it may (-1: until one of its deliveries settles). */
  private blockedFor(ks: KeyState<E>, flow: FetchLimits | undefined, now: number): number {
    if (ks.backoffUntil > now) return ks.backoffUntil - now;
    if (flow?.keyConcurrency !== undefined && ks.running >= flow.keyConcurrency) return -1;
    if (flow?.keyRateLimit) {
      if (ks.bucket === undefined) ks.bucket = new TokenBucket(full(flow.keyRateLimit), now);
      else ks.bucket.setRate(full(flow.keyRateLimit));
      if (ks.bucket.available(now, 1) < 1) return Math.max(1, ks.bucket.nextInMs(now));
    }
    return 0;
  }

  /** Parks a lane on its key: until `ms` from now, or (-1) until a delivery of the key settles. */
  private park(ks: KeyState<E>, lane: Lane<E>, ms: number, now: number): void {
    ks.parked.push(lane);
    if (ms < 0) return;
    const at = now + ms;
    if (ks.timer !== undefined && ks.timerAt <= at) return;
    if (ks.timer !== undefined) clearTimeout(ks.timer);
    ks.timerAt = at;
    ks.timer = setTimeout(() => {
      ks.timer = undefined;
      ks.timerAt = Infinity;
      this.unpark(ks);
    }, ms);
    ks.timer.unref();
  }

  /** Puts a key's parked lanes back into their rings and wakes waiting fetches. */
  private unpark(ks: KeyState<E>): void {
    const lanes = ks.parked;
    ks.parked = [];
    for (const lane of lanes) this.rings[lane.level]?.push(lane);
    this.maybeForget(ks);
    // After the caller's step (a redelivery is put back at its lane's head first).
    if (lanes.length > 0) queueMicrotask(this.wake);
  }

  /** Drops the state of a key that holds nothing (no messages, deliveries, back-off or spent tokens). */
  private maybeForget(ks: KeyState<E>): void {
    if (ks.running > 0 || ks.parked.length > 0 || ks.timer !== undefined || ks.backoffUntil > Date.now()) return;
    if (ks.lanes.some((l) => l !== undefined && l.items.length > 0)) return;
    if (ks.bucket !== undefined && !ks.bucket.isFull(Date.now())) return;
    this.keys.delete(ks.name);
  }

  private armGroupTimer(ms: number, now: number): void {
    const at = now + Math.max(1, ms);
    if (this.timer !== undefined && this.timerAt <= at) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerAt = Infinity;
      this.wake();
    }, at - now);
    this.timer.unref();
  }
}
