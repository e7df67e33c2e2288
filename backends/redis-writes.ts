/**
 * Writes of the Redis result backend: a write is checked and encoded into a {@link PendingWrite},
 * and the writes of one event-loop tick travel together at its end — a lone `absent` write of a state
 * alone as the native `SET … NX GET` (same semantics, Redis ≥ 7.0; older servers get the script),
 * anything else in calls of the write script (`./redis-scripts.ts`), which checks each write's guard
 * (a write whose caller knows the stored state, `StateWrite.basis`, sends only its edits from it:
 * `./redis-delta.ts`, and declares only the index sets of that state's status and its new one:
 * `./redis-index-plan.ts`)
 * against the stored state and sets state and result with their own expiries (`-1` → no expiry,
 * `0` → key deleted, `N` → `EX N`). On a Redis Cluster the writes of a tick are grouped by hash slot,
 * one script call per slot.
 */
import { keySlot, type RedisClient } from '../brokers/redis-cluster.js';
import { callWithWait, type WaitReplicas } from '../brokers/redis-replicas.js';
import { corkTick } from '../brokers/redis-cork.js';
import { applyIndexMoves, statusOf, type IndexMove } from './redis-cluster-index.js';
import type { Expiry, StateWrite, WriteOutcome } from '../src/backend.js';
import { InvalidOptionError, ValueTooLargeError } from '../src/errors.js';
import { encodeTaskState, isFinalStatus, parseTaskState, type TaskState } from '../src/state.js';
import { taskTag } from './redis-keys.js';
import { IndexPlan, indexPart, widenedPart, type IndexPart } from './redis-index-plan.js';
import { WRITE_COMMAND, writeOp } from './redis-scripts.js';
import { stateDelta } from './redis-delta.js';

/** Largest string Redis stores (512 MiB, the default `proto-max-bulk-len`). */
export const REDIS_MAX_STRING = 512 * 1024 * 1024;

/** Most writes sent in one script call. */
const MAX_WRITES_PER_CALL = 256;

/** Stored state records leave out the task id: their key `P:{ID}:state` names it (readers put it back). */
const OMIT_ID = { omitId: true } as const;

/** Throws {@link ValueTooLargeError} when `text` is longer than Redis stores. */
function checkSize(text: string): void {
  // A UTF-16 code unit takes at most 3 UTF-8 bytes: short texts need no byte count.
  if (text.length * 3 <= REDIS_MAX_STRING) return;
  const bytes = Buffer.byteLength(text);
  if (bytes > REDIS_MAX_STRING) throw new ValueTooLargeError(bytes, REDIS_MAX_STRING);
}

/**
 * Checks an expiry (seconds; -1 forever; 0 not stored; N > 0) and returns it as a whole number of
 * seconds (fractions round up, so an entry never lives shorter than asked). Throws
 * {@link InvalidOptionError} for anything else.
 */
export function normalizeExpiry(ttl: Expiry, what: string): number {
  if (typeof ttl !== 'number' || Number.isNaN(ttl)) throw new InvalidOptionError(`${what} must be a number of seconds, got ${String(ttl)}`);
  if (ttl === -1 || ttl === 0) return ttl;
  if (ttl > 0 && Number.isFinite(ttl)) return Math.ceil(ttl);
  if (ttl === Infinity) return -1;
  throw new InvalidOptionError(`${what} must be -1 (forever), 0 (not stored) or a positive number of seconds, got ${ttl}`);
}

/** The write script as registered on the client: one array `[numkeys, ...keys, ...args]`. */
type WriteCommand = (keysAndArgs: Array<string | number>) => Promise<Array<number | string | null>>;

/** A write waiting for the end of the current tick, to travel with the others in one script call. */
export class PendingWrite {
  resolve!: (outcome: WriteOutcome) => void;
  reject!: (err: unknown) => void;
  constructor(
    readonly stateKey: string,
    /** The task id (stored records leave it out: the key names it, percent-encoded). */
    readonly id: string,
    /** Result key, only when a result is written. */
    readonly resultKey: string | undefined,
    readonly stateText: string,
    /** The script's op argument (see `writeOp`). */
    readonly op: string,
    readonly result: string | undefined,
    /** Result expiry, normalised, as text. */
    readonly resultTtl: string,
    /** State expiry, normalised (seconds, -1), when this write can be one native `SET NX GET`; else 0. */
    readonly nativeTtl: number,
    /** What the write keeps of the task index (`./redis-index-plan.ts`), when it keeps it. */
    readonly ix?: IndexPart,
    /** On a cluster: the index move made after the write (its previous status filled in then). */
    readonly move?: Omit<IndexMove, 'prev'>,
    /** For a delta write (`stateText` a delta, `./redis-delta.ts`): the same write whole, sent when the basis was not stored. */
    readonly whole?: PendingWrite,
  ) {}

  /** Settles with the script's or the SET's reply: written or not, and the previous state text. */
  settle(written: boolean, prev: string | null | undefined): void {
    if (prev === undefined || prev === null) {
      this.resolve({ written, previous: null });
      return;
    }
    const key = this.stateKey;
    const id = this.id;
    if (!written) {
      let previous: TaskState;
      try {
        previous = parseTaskState(prev, key, id);
      } catch (err) {
        this.reject(err);
        return;
      }
      this.resolve({ written: false, previous });
      return;
    }
    // The previous state is parsed only when a caller reads it (a worker's successful writes never do).
    let previous: TaskState | undefined;
    this.resolve({
      written: true,
      get previous(): TaskState {
        return (previous ??= parseTaskState(prev, key, id));
      },
    });
  }

  /**
   * The same write with all its group's index sets declared (sent again when the script found a
   * status other than the expected one stored: reply 3).
   */
  widened(): PendingWrite {
    const ix = this.ix === undefined ? undefined : widenedPart(this.ix);
    return new PendingWrite(this.stateKey, this.id, this.resultKey, this.stateText, this.op, this.result, this.resultTtl, this.nativeTtl, ix, this.move, this.whole?.widened());
  }

  /** Bytes of the values written (for a size error). */
  bytes(): number {
    if (this.whole !== undefined) return this.whole.bytes();
    return Buffer.byteLength(this.stateText) + (this.result === undefined ? 0 : Buffer.byteLength(this.result));
  }
}

/** How a backend keeps its task index in the write script (see `./redis-index.ts`). */
export interface IndexKeeping {
  /** Most entries per group and status. */
  cap: number;
  /** The index key base of a group. */
  base(group: string): string;
  /** The key of the set of indexed groups. */
  groupsKey: string;
  /** On a Redis Cluster: the index is moved by a second call after the writes (`./redis-cluster-index.ts`). */
  cluster?: boolean;
}

/**
 * Validates a write for keys under `prefix` and turns it into a {@link PendingWrite} (throws typed
 * errors). With `index`, the write also keeps the task index (in the same script call: a lone
 * `absent` write then goes through the script too, not the native SET). With `deltas`, a guarded
 * write with a basis is sent as its edits from it when they are shorter (`./redis-delta.ts`). The
 * stored record leaves out the task id (its key names it) unless `recordIds`.
 */
export function prepareWrite(prefix: string, w: StateWrite, index?: IndexKeeping, deltas = false, recordIds = false): PendingWrite {
  const guard = w.guard;
  if (guard !== 'absent' && guard !== 'notFinal' && guard !== 'notSuccess') {
    throw new InvalidOptionError(`unknown write guard ${JSON.stringify(guard)}`);
  }
  const stateTtl = normalizeExpiry(w.stateTtl, 'stateTtl');
  const result = w.result;
  let resultTtl = 0;
  if (result !== undefined) {
    if (w.resultTtl === undefined) throw new InvalidOptionError('resultTtl is required when a result is written');
    resultTtl = normalizeExpiry(w.resultTtl, 'resultTtl');
    checkSize(result);
  }
  const state = w.state;
  const encoding = recordIds ? undefined : OMIT_ID;
  const stateText = encodeTaskState(state, encoding);
  checkSize(stateText);
  const tag = taskTag(prefix, state.id);
  const status = state.status;
  const final = isFinalStatus(status);
  const indexed = index !== undefined && state.group !== '';
  if (indexed && index.cluster === true) {
    // The write returns the state it replaced; the index move follows it (see WriteBatcher).
    const move = { base: index.base(state.group), group: state.group, status, score: state.updatedAt, id: state.id, gone: stateTtl === 0 };
    return new PendingWrite(tag + ':state', state.id, result === undefined ? undefined : tag + ':result', stateText,
      writeOp(guard, status, result !== undefined, stateTtl, true, false), result, String(resultTtl), 0, undefined, move);
  }
  // A guarded write with a basis declares only the index sets of its basis's status and its new one.
  const ix = indexed ? indexPart(index.base(state.group), status, state.updatedAt, state.id, index.cap, guard === 'absent', w.basis?.status) : undefined;
  const stateKey = tag + ':state';
  const resultKey = result === undefined ? undefined : tag + ':result';
  const previous = w.previous !== 'refused';
  const whole = new PendingWrite(
    stateKey,
    state.id,
    resultKey,
    stateText,
    writeOp(guard, status, result !== undefined, stateTtl, previous, ix !== undefined),
    result,
    String(resultTtl),
    guard === 'absent' && result === undefined && stateTtl !== 0 && !final && ix === undefined ? stateTtl : 0,
    ix,
  );
  // With the state the writer expects stored: only the edits from it, when they are shorter.
  if (!deltas || w.basis === undefined || guard === 'absent' || stateTtl === 0) return whole;
  const delta = stateDelta(encodeTaskState(w.basis, encoding), stateText);
  if (delta === undefined) return whole;
  const op = writeOp(guard, status, result !== undefined, stateTtl, previous, ix !== undefined, true);
  return new PendingWrite(stateKey, state.id, resultKey, delta, op, result, String(resultTtl), 0, ix, undefined, whole);
}

/** The writes of the current tick on one connection. */
export class WriteBatcher {
  private pending: PendingWrite[] = [];
  /**
   * Whether a lone `absent` state-only write is the native `SET … NX GET` (Redis ≥ 7.0) instead of a
   * script call. Turned off for good on the first syntax error (older servers).
   */
  private nativeSet = true;

  /**
   * @param client the connection the writes are sent on (with the write script defined)
   * @param fail the typed error a failed write of `bytes` bytes rejects with
   */
  /**
   * @param client the connection the writes are sent on (with the write script defined)
   * @param fail the typed error a failed write of `bytes` bytes rejects with
   * @param groupsKey the key of the set of indexed groups (when writes keep the task index)
   * @param wait replicas every write waits for (`waitReplicas`), if any
   * @param indexCap most index entries per group and status (for the index moves on a cluster)
   */
  constructor(
    private readonly client: RedisClient,
    private readonly fail: (err: unknown, bytes: number) => Error,
    private readonly groupsKey = '',
    private readonly wait: WaitReplicas | undefined = undefined,
    private readonly indexCap = 0,
  ) {}

  /** Queues a write for the end of the tick; resolves with its outcome. */
  add(p: PendingWrite): Promise<WriteOutcome> {
    return new Promise<WriteOutcome>((resolve, reject) => {
      p.resolve = resolve;
      p.reject = reject;
      this.pending.push(p);
      if (this.pending.length === 1) process.nextTick(this.flush);
    });
  }

  /** Sends `whole` in place of the write `p` (a delta's whole write, or `p` widened), settling `p`'s promise with its outcome. */
  private resend(p: PendingWrite, whole: PendingWrite): void {
    whole.resolve = p.resolve;
    whole.reject = p.reject;
    this.pending.push(whole);
    if (this.pending.length === 1) process.nextTick(this.flush);
  }

  /**
   * `SET state NX GET [EX n]`: one native command with the `absent` guard's exact semantics (atomic;
   * refused when any value is stored, which it returns). Redis older than 7.0 answers with a syntax
   * error (NX and GET together) without effect: the write is then sent with the script, as every
   * later one.
   */
  private sendNative(p: PendingWrite): void {
    const args = p.nativeTtl > 0 ? [p.stateKey, p.stateText, 'NX', 'GET', 'EX', String(p.nativeTtl)] : [p.stateKey, p.stateText, 'NX', 'GET'];
    const reply = callWithWait(this.client, 'set', args, this.wait) as Promise<string | null>;
    reply.then(
      (prev) => p.settle(prev === null, prev),
      (err: unknown) => {
        if (this.nativeSet && err instanceof Error && /syntax error/i.test(err.message)) {
          this.nativeSet = false;
          this.sendScript([p], 0, 1);
          return;
        }
        p.reject(this.fail(err, p.bytes()));
      },
    );
  }

  /**
   * Sends the writes of the tick: a lone `absent` write of a state alone as one native SET, anything
   * else in script calls of up to {@link MAX_WRITES_PER_CALL} writes (each write keeps its own guard
   * and atomicity, in order; a connection failure rejects every write of the call, as it would have
   * rejected each of them pipelined). One script call of many writes costs less, in Node and in
   * Redis, than as many native commands (measured: the script does its `absent` checks with the same
   * native `SET NX GET`).
   */
  private readonly flush = (): void => {
    const all = this.pending;
    this.pending = [];
    corkTick(this.client);
    const first = all[0] as PendingWrite;
    if (all.length === 1 && this.nativeSet && first.nativeTtl !== 0) this.sendNative(first);
    else if (this.client.isCluster && all.length > 1) {
      // A script call may touch one slot only: one call per slot (the two keys of a task share one).
      const bySlot = new Map<number, PendingWrite[]>();
      for (const p of all) {
        const slot = keySlot(p.stateKey);
        const list = bySlot.get(slot);
        if (list === undefined) bySlot.set(slot, [p]);
        else list.push(p);
      }
      for (const list of bySlot.values()) this.sendScript(list, 0, list.length);
    } else this.sendScript(all, 0, all.length);
  };

  /** Sends `all[from..to)` as script calls of at most {@link MAX_WRITES_PER_CALL} writes. */
  private sendScript(all: PendingWrite[], from: number, to: number): void {
    const run = (this.client as unknown as Record<string, WriteCommand>)[WRITE_COMMAND] as WriteCommand;
    for (let start = from; start < to; start += MAX_WRITES_PER_CALL) {
      const end = Math.min(to, start + MAX_WRITES_PER_CALL);
      let keys = 0;
      let args = 0;
      let indexed = false;
      for (let i = start; i < end; i++) {
        const p = all[i] as PendingWrite;
        const withResult = p.resultKey !== undefined;
        keys += withResult ? 2 : 1;
        args += (withResult ? 4 : 2) + (p.ix === undefined ? 0 : 1);
        if (p.ix !== undefined) indexed = true;
      }
      // The index sets the writes may touch follow the writes' keys (`./redis-index-plan.ts`).
      let plan: IndexPlan | undefined;
      if (indexed) {
        plan = new IndexPlan(all.slice(start, end).map((p) => p.ix), 1 + keys);
        keys += plan.keys.length + 1; // and the set of indexed groups, last
      }
      // One array, passed as one argument: ioredis flattens it (no spread of thousands of arguments).
      const keysAndArgs = new Array<string | number>(1 + keys + args);
      keysAndArgs[0] = keys;
      let k = 1;
      let a = 1 + keys;
      for (let i = start; i < end; i++) {
        const p = all[i] as PendingWrite;
        keysAndArgs[k++] = p.stateKey;
        keysAndArgs[a++] = p.stateText;
        keysAndArgs[a++] = p.op;
        if (p.resultKey !== undefined) {
          keysAndArgs[k++] = p.resultKey;
          keysAndArgs[a++] = p.result as string;
          keysAndArgs[a++] = p.resultTtl;
        }
        if (p.ix !== undefined) keysAndArgs[a++] = (plan as IndexPlan).arg(p.ix);
      }
      if (plan !== undefined) {
        for (const key of plan.keys) keysAndArgs[k++] = key;
        keysAndArgs[k++] = this.groupsKey;
      }
      (this.wait === undefined ? run.call(this.client, keysAndArgs) : (callWithWait(this.client, WRITE_COMMAND, [keysAndArgs], this.wait) as ReturnType<WriteCommand>)).then(
        (reply) => {
          const settleAll = (): void => {
            for (let i = start, j = 0; i < end; i++, j += 2) {
              const p = all[i] as PendingWrite;
              // 2: a delta write whose basis was not stored did nothing; it goes again whole.
              if (reply[j] === 2 && p.whole !== undefined) {
                this.resend(p, p.whole);
                continue;
              }
              // 3: another status than the expected one was stored; it goes again with all its group's sets.
              if (reply[j] === 3 && p.ix !== undefined && !p.ix.anyPrevious) {
                this.resend(p, p.widened());
                continue;
              }
              const prev = reply[j + 1];
              p.settle(reply[j] === 1, prev === null || prev === undefined ? null : String(prev));
            }
          };
          let moves: IndexMove[] | undefined;
          for (let i = start, j = 0; i < end; i++, j += 2) {
            const m = (all[i] as PendingWrite).move;
            if (m !== undefined && reply[j] === 1) (moves ??= []).push({ ...m, prev: statusOf(reply[j + 1] as string | null) });
          }
          if (moves === undefined) settleAll();
          else void applyIndexMoves(this.client, moves, this.indexCap, this.groupsKey).then(settleAll);
        },
        (err: unknown) => {
          for (let i = start; i < end; i++) {
            const p = all[i] as PendingWrite;
            p.reject(this.fail(err, p.bytes()));
          }
        },
      );
    }
  }
}
