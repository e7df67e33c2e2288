/**
 * Configuration of servers and clients and per-send controls, with their defaults and validation.
 */
import type { Backend, Expiry } from './backend.js';
import type { Broker } from './broker.js';
import { InvalidOptionError } from './errors.js';
import type { Logger } from './logger.js';
import type { Backoff } from './message.js';
import type { OpsServerOptions } from './ops/server-ops.js';
import type { Instrumentation, InstrumentationOption } from './instrumentation.js';

/** Controls of one `send` (YTask's `SetTaskCtl`). */
export interface SendOptions {
  /** Retries after a failed run (default 3, as YTask); 0 disables retries. */
  retryCount?: number;
  /** Delay between retries: a policy, or `'fixed'`/`'exponential'` with the default delays. */
  backoff?: Backoff | 'fixed' | 'exponential';
  /** Run no earlier than this many ms from now. */
  runAfter?: number;
  /** Run no earlier than this time. */
  runAt?: Date | number;
  /** Never run after this time: a task still waiting then ends as `expired`. */
  expireAt?: Date | number;
  /** Per-task handler timeout in ms: a handler that has not settled by then fails with `ERR_TASK_TIMEOUT`. */
  timeout?: number;
  /**
   * Explicit task id, also the idempotency key: sending again with an id whose state is still stored
   * starts no second task and returns the same id. 1..200 characters.
   */
  id?: string;
  /**
   * The caller's open database transaction (for the PostgreSQL broker: a `pg` client between `BEGIN`
   * and `COMMIT`). The task, and its `sent` state when the backend is transactional too, are written
   * in that transaction: workers see the task only once it commits, and nothing exists if it rolls
   * back. Opaque to the core; a broker that cannot honour it makes the send fail with
   * `ERR_INVALID_OPTION`. Use it on a `with()` view per transaction: `client.with({ tx }).send(...)`.
   */
  tx?: unknown;
  /** Priority 0..9, higher first (default 5); strict between levels, FIFO within one. */
  priority?: number;
  /** Flow-control key (tenant, user, account): keys are served round-robin and may be limited per group. */
  key?: string;
}

/** Options shared by {@link ServerOptions} and {@link ClientOptions}. */
export interface CommonOptions {
  /** Message transport (default: a new in-memory broker). */
  broker?: Broker;
  /** Result store (default: a new in-memory backend). */
  backend?: Backend;
  /** Where tasuki logs (default: console, warnings and errors only). */
  logger?: Logger;
  /** Seconds a task state is kept (-1 forever, 0 not stored); default 86 400 (1 day), as YTask. */
  statusExpires?: Expiry;
  /** Seconds a return value is kept (-1 forever, 0 not stored); default 86 400 (1 day), as YTask. */
  resultExpires?: Expiry;
  /** Defaults applied to every send (per-send options override them). */
  sendDefaults?: SendOptions;
  /**
   * Metrics and tracing hooks (`tasuki/metrics`, `tasuki/otel`, or your own {@link Instrumentation}).
   * A server's clients (`server.client()`) use the server's. Absent: no hook is called.
   */
  instrumentation?: InstrumentationOption;
}

/** Options of a client (`new Client(...)` or `server.client()`). */
export type ClientOptions = CommonOptions;

/** Options of a server (worker process). */
export interface ServerOptions extends CommonOptions, OpsServerOptions {
  /** Lease of a fetched message in ms, renewed every third of it while the handler runs (default 30 000). */
  leaseMs?: number;
  /** How often running tasks look for an abort request, in ms (default 1 000). */
  abortPollMs?: number;
  /** Longest blocking wait of one fetch in ms (default 5 000); shutdown interrupts it. */
  fetchWaitMs?: number;
  /**
   * How long a message naming a task this worker does not know is retried before it fails and is
   * dead-lettered, in ms (default 60 000: room for a rolling deploy).
   */
  unknownTaskRetryMs?: number;
  /** Delay between those retries in ms (default 5 000). */
  unknownTaskRetryDelayMs?: number;
  /**
   * After a running task's signal fires (timeout, abort, lost lease, shutdown), how long in ms its
   * handler may keep its concurrency slot before it is abandoned (default 5 000). Handlers that honour
   * their `AbortSignal` settle sooner; one that never settles cannot stall the worker.
   */
  abandonAfterMs?: number;
  /**
   * Messages each group worker fetches ahead of free slots, so that a slot that frees starts the next
   * task without a broker round trip (default: the group's concurrency). Prefetched messages are
   * leased to this worker (leases renewed) and handed back at shutdown; 0 turns prefetching off, which
   * is fairer across many workers when tasks are slow.
   */
  prefetch?: number;
  /**
   * Deliveries of one run a task may get before it fails with `ERR_TOO_MANY_DELIVERIES` and is
   * dead-lettered, when each earlier one started the handler and never concluded (its worker died:
   * `process.exit`, OOM, SIGKILL, or lost its lease). Default 5. Counted in the task state, so it
   * needs a backend that stores states (`statusExpires` ≠ 0).
   */
  maxDeliveries?: number;
}

/** Default retry backoff: exponential from 1 s, capped at 5 min, 50 % jitter. */
export const DEFAULT_BACKOFF: Readonly<Backoff> = Object.freeze({ type: 'exponential', delayMs: 1000, maxDelayMs: 300_000, jitter: 0.5 });

/** Default retries after a failure (YTask's default). */
export const DEFAULT_RETRY_COUNT = 3;

/** Default status and result expiry in seconds (YTask's default: one day). */
export const DEFAULT_EXPIRES = 86_400;

/** Resolved server settings. */
export interface ServerSettings {
  statusExpires: Expiry;
  resultExpires: Expiry;
  leaseMs: number;
  abortPollMs: number;
  fetchWaitMs: number;
  unknownTaskRetryMs: number;
  unknownTaskRetryDelayMs: number;
  abandonAfterMs: number;
  /** Messages fetched ahead of free slots per group; `undefined`: the group's concurrency. */
  prefetch: number | undefined;
  maxDeliveries: number;
}

/** Checks an expiry value (-1, 0 or a positive whole number of seconds). */
export function checkExpiry(name: string, v: unknown): Expiry {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < -1) {
    throw new InvalidOptionError(`${name} must be -1 (forever), 0 (not stored) or a whole number of seconds, got ${String(v)}`);
  }
  return v;
}

/** Longest duration accepted for any ms option (100 years): timeouts, delays, waits. */
export const MAX_MS = 3_155_760_000_000;

/** Checks a duration in ms: a finite number from `min` to {@link MAX_MS}. */
export function checkMs(name: string, v: unknown, min = 1): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > MAX_MS) {
    throw new InvalidOptionError(`${name} must be a number of milliseconds from ${min} to ${MAX_MS} (100 years), got ${String(v)}`);
  }
  return v;
}

/** Resolves server settings with defaults, throwing {@link InvalidOptionError} on bad values. */
export function resolveServerSettings(o: ServerOptions): ServerSettings {
  return {
    statusExpires: checkExpiry('statusExpires', o.statusExpires ?? DEFAULT_EXPIRES),
    resultExpires: checkExpiry('resultExpires', o.resultExpires ?? DEFAULT_EXPIRES),
    leaseMs: checkMs('leaseMs', o.leaseMs ?? 30_000, 100),
    abortPollMs: checkMs('abortPollMs', o.abortPollMs ?? 1000, 10),
    fetchWaitMs: checkMs('fetchWaitMs', o.fetchWaitMs ?? 5000, 10),
    unknownTaskRetryMs: checkMs('unknownTaskRetryMs', o.unknownTaskRetryMs ?? 60_000, 0),
    unknownTaskRetryDelayMs: checkMs('unknownTaskRetryDelayMs', o.unknownTaskRetryDelayMs ?? 5000, 0),
    abandonAfterMs: checkMs('abandonAfterMs', o.abandonAfterMs ?? 5000, 0),
    prefetch: checkCount('prefetch', o.prefetch),
    maxDeliveries: checkCount('maxDeliveries', o.maxDeliveries, 1) ?? 5,
  };
}

/** Checks an optional whole number ≥ `min`. */
function checkCount(name: string, v: unknown, min = 0): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
    throw new InvalidOptionError(`${name} must be a whole number ≥ ${min}, got ${String(v)}`);
  }
  return v;
}

/** Turns a Date or epoch-ms number into epoch ms. */
export function toEpoch(name: string, v: Date | number): number {
  const ms = v instanceof Date ? v.getTime() : v;
  if (typeof ms !== 'number' || !Number.isFinite(ms)) throw new InvalidOptionError(`${name} must be a valid Date or epoch milliseconds`);
  return ms;
}

/** Resolves the backoff option. */
export function resolveBackoff(b: SendOptions['backoff']): Backoff {
  if (b === undefined) return { ...DEFAULT_BACKOFF };
  if (b === 'fixed') return { type: 'fixed', delayMs: DEFAULT_BACKOFF.delayMs };
  if (b === 'exponential') return { ...DEFAULT_BACKOFF };
  if (typeof b !== 'object' || b === null || (b.type !== 'fixed' && b.type !== 'exponential')) {
    throw new InvalidOptionError(`backoff.type must be 'fixed' or 'exponential'`);
  }
  checkMs('backoff.delayMs', b.delayMs, 0);
  if (b.maxDelayMs !== undefined) checkMs('backoff.maxDelayMs', b.maxDelayMs, 0);
  if (b.jitter !== undefined && (typeof b.jitter !== 'number' || b.jitter < 0 || b.jitter > 1)) {
    throw new InvalidOptionError(`backoff.jitter must be a fraction between 0 and 1`);
  }
  const out: Backoff = { type: b.type, delayMs: b.delayMs };
  if (b.maxDelayMs !== undefined) out.maxDelayMs = b.maxDelayMs;
  if (b.jitter !== undefined) out.jitter = b.jitter;
  return out;
}
