import { InvalidOptionError } from './errors.js';

/**
 * The task control object handed to handlers registered with `{ ctl: true }` (YTask's `TaskCtl`).
 */

/** Control of the running task, from inside its handler. */
export interface TaskCtl {
  /** Task id. */
  readonly id: string;
  /** Group of the task. */
  readonly group: string;
  /** Task name. */
  readonly name: string;
  /** Retries used before this run (0 on the first run). */
  readonly retriesUsed: number;
  /** Retries still allowed if this run fails. */
  readonly retriesLeft: number;
  /**
   * Fires when the task is aborted (`client.abort`), its per-task timeout passes, its lease is lost,
   * or the worker shuts down past its deadline. `signal.reason` is the typed error. Pass it to
   * `fetch`, timers and anything abortable.
   */
  readonly signal: AbortSignal;
  /**
   * Asks for a retry: when the handler returns (or throws), the run counts as failed with `error` and
   * is retried with backoff if retries are left. The handler should return right after calling it.
   */
  retry(error?: unknown): void;
  /** Changes how many retries are left (0 disables retrying this task). */
  setRetryCount(n: number): void;
  /** Stores a progress value (any superjson-encodable value) in the backend, visible to `getStatus`/`getResult`. */
  progress(value: unknown): Promise<void>;
  /**
   * Pushes this task's key back for `ms` (an upstream answered 429): no worker gets a task of the
   * key before then, and when the handler returns this task is handed back to wait with them — not
   * failed, not retried, not counted as an attempt. The handler should return right after it
   * resolves. Rejects with `UnsupportedError` on a broker without per-key flow control, and with
   * `InvalidOptionError` for a task sent without a key.
   */
  backoffKey(ms: number): Promise<void>;
}

/** @internal Mutable state behind a {@link TaskCtl}, read by the worker when the handler settles. */
export class TaskCtlImpl implements TaskCtl {
  /** @internal set by retry() */
  retryRequested = false;
  /** @internal error given to retry() */
  retryError: unknown = undefined;
  /** @internal set by a successful backoffKey(): the run ends by handing the task back */
  handBackRequested = false;

  /** @internal */
  constructor(
    readonly id: string,
    readonly group: string,
    readonly name: string,
    readonly retriesUsed: number,
    public retriesLeft: number,
    readonly signal: AbortSignal,
    private readonly onProgress: (value: unknown) => Promise<void>,
    private readonly onBackoffKey?: (ms: number) => Promise<void>,
  ) {}

  /** @inheritdoc */
  retry(error?: unknown): void {
    this.retryRequested = true;
    this.retryError = error;
  }

  /** @inheritdoc */
  setRetryCount(n: number): void {
    if (!Number.isInteger(n) || n < 0) throw new InvalidOptionError(`retry count must be a whole number ≥ 0, got ${n}`);
    this.retriesLeft = n;
  }

  /** @inheritdoc */
  progress(value: unknown): Promise<void> {
    return this.onProgress(value);
  }

  /** @inheritdoc */
  async backoffKey(ms: number): Promise<void> {
    if (this.onBackoffKey === undefined) throw new InvalidOptionError('backoffKey is not available here');
    await this.onBackoffKey(ms);
    this.handBackRequested = true;
  }
}
