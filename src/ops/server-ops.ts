/**
 * The operations side of a server: its heartbeat in the worker registry, the paused groups it
 * honours, its task counters, and the watchdog. Everything goes through the backend's optional
 * record store (and task index, for the watchdog); a backend without them gets no heartbeat and no
 * pause, and a watchdog is refused at construction (ERR_UNSUPPORTED).
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Backend, RecordStore } from '../backend.js';
import { InvalidOptionError, toError } from '../errors.js';
import type { Logger } from '../logger.js';
import { checkMs } from '../options.js';
import { TASUKI_VERSION } from '../version.js';
import { indexOf, recordsOf, RECORD_KINDS } from './operations.js';
import type { AbnormalTask, WorkerGroupInfo, WorkerInfo } from './types.js';
import { resolveWatchdog, Watchdog, type WatchdogOptions } from './watchdog.js';

/** Server options of the operations layer. */
export interface OpsServerOptions {
  /**
   * How often the server writes its worker-registry entry, in ms (default 5 000); the entry expires
   * after three of them, so a killed worker disappears within `3 × heartbeatMs`. 0: no heartbeat.
   */
  heartbeatMs?: number;
  /** How often paused groups are read from the backend, in ms (default 1 000): a pause is honoured within about this. */
  pausePollMs?: number;
  /** Reports abnormal tasks as the `abnormal` event (GTA's CheckCallback); needs a backend with a task index. */
  watchdog?: WatchdogOptions;
}

/** What the server's operations side needs from the server. */
export interface ServerOpsContext {
  backend: Backend;
  logger: Logger;
  /** The groups running now, with their bounds. */
  groups(): WorkerGroupInfo[];
  /** Emits the server's `abnormal` event. */
  abnormal(group: string, tasks: AbnormalTask[], at: number): void;
}

/** Heartbeat, pause polling, counters and watchdog of one server. */
export class ServerOps {
  /** This server instance's id in the registry. */
  readonly workerId = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  /** Counters reported in the heartbeat. */
  readonly counters = { succeeded: 0, failed: 0, retried: 0 };
  private readonly startedAt = Date.now();
  private readonly heartbeatMs: number;
  private readonly pausePollMs: number;
  private readonly records: RecordStore | undefined;
  private readonly watchdog: Watchdog | undefined;
  private pausedGroups = new Set<string>();
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private pauseTimer: NodeJS.Timeout | undefined;
  private started: Promise<void> | undefined;
  private stopped = false;

  /** @param ctx the server side @param options see {@link OpsServerOptions} */
  constructor(
    private readonly ctx: ServerOpsContext,
    options: OpsServerOptions,
  ) {
    this.heartbeatMs = options.heartbeatMs === 0 ? 0 : checkMs('heartbeatMs', options.heartbeatMs ?? 5000, 10);
    this.pausePollMs = checkMs('pausePollMs', options.pausePollMs ?? 1000, 10);
    this.records = ctx.backend.records;
    if (options.watchdog !== undefined) {
      if (options.watchdog === null) throw new InvalidOptionError('watchdog must be an object');
      const settings = resolveWatchdog(options.watchdog);
      this.watchdog = new Watchdog(
        {
          index: indexOf(ctx.backend, 'the watchdog'),
          records: recordsOf(ctx.backend, 'the watchdog'),
          logger: ctx.logger,
          workerId: this.workerId,
          groups: () => ctx.groups().map((g) => g.group),
          report: (group, tasks, at) => ctx.abnormal(group, tasks, at),
        },
        settings,
      );
    }
  }

  /** Whether the counters need `event` emitted. */
  counts(event: string): boolean {
    return this.records !== undefined && this.heartbeatMs > 0 && (event === 'succeeded' || event === 'failed' || event === 'retrying');
  }

  /** Counts an emitted event. */
  count(event: string): void {
    if (event === 'succeeded') this.counters.succeeded++;
    else if (event === 'failed') this.counters.failed++;
    else if (event === 'retrying') this.counters.retried++;
  }

  /** Whether `group` is paused (as last read). */
  isPaused(group: string): boolean {
    return this.pausedGroups.has(group);
  }

  /** Starts heartbeat, pause polling and watchdog once (the first `run`); resolves after the first pause read. */
  start(): Promise<void> {
    this.started ??= this.begin();
    return this.started;
  }

  private async begin(): Promise<void> {
    if (this.records === undefined) return;
    await this.readPaused();
    if (this.stopped) return;
    // Unref'd like the fetch loops it steers (their connections keep a worker process alive); cleared at shutdown.
    this.pauseTimer = setInterval(() => void this.readPaused(), this.pausePollMs);
    this.pauseTimer.unref();
    if (this.heartbeatMs > 0) {
      await this.heartbeat();
      if (this.stopped) return;
      this.heartbeatTimer = setInterval(() => void this.heartbeat(), this.heartbeatMs);
      this.heartbeatTimer.unref();
    }
    this.watchdog?.start();
  }

  /** Writes the heartbeat again now (e.g. after a group started). Never rejects. */
  async heartbeat(): Promise<void> {
    if (this.records === undefined || this.heartbeatMs === 0 || this.stopped) return;
    try {
      await this.records.put(RECORD_KINDS.workers, this.workerId, JSON.stringify(this.info()), 3 * this.heartbeatMs);
    } catch (err) {
      this.ctx.logger.warn('worker heartbeat failed', { error: toError(err) });
    }
  }

  /** This server's registry entry. */
  info(): WorkerInfo {
    const [host, pid] = [hostname(), process.pid];
    const groups = this.ctx.groups().map((g) => ({ ...g, paused: this.isPaused(g.group) }));
    return { id: this.workerId, host, pid, groups, ...this.counters, startedAt: this.startedAt, heartbeatAt: Date.now(), version: TASUKI_VERSION };
  }

  private async readPaused(): Promise<void> {
    if (this.records === undefined) return;
    try {
      const list = await this.records.list(RECORD_KINDS.paused);
      const before = this.pausedGroups;
      this.pausedGroups = new Set(list.map((r) => r.key));
      // The registry entry says which of this server's groups are paused: rewritten at once when that
      // changed, so that `workers()` shows a pause within the poll interval rather than a heartbeat.
      if (this.heartbeatTimer !== undefined && this.ctx.groups().some((g) => before.has(g.group) !== this.pausedGroups.has(g.group))) await this.heartbeat();
    } catch (err) {
      // Keep the last known set: a backend outage neither pauses nor resumes anything.
      this.ctx.logger.warn('could not read paused groups', { error: toError(err) });
    }
  }

  /** Stops timers and removes the registry entry (before the backend closes). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.pauseTimer);
    clearInterval(this.heartbeatTimer);
    this.watchdog?.stop();
    await this.started?.catch(() => undefined);
    if (this.records !== undefined && this.heartbeatMs > 0 && this.started !== undefined) {
      await this.records.remove(RECORD_KINDS.workers, this.workerId).catch((err: unknown) => this.ctx.logger.warn('could not remove the worker registry entry', { error: toError(err) }));
    }
  }
}
