/**
 * GTA's abnormal-task check: tasks sent but not started in time, running past a limit, or
 * redelivered after a lost lease (their worker died or froze). {@link findAbnormal} scans one group
 * through the task index (also used by `tasuki abnormal`); {@link Watchdog} runs it every interval
 * in a server, and only the process that claims the interval (a record claimed in the backend) scans
 * a group, so however many processes watch, a group is reported once per interval.
 */
import type { RecordStore, TaskIndex } from '../backend.js';
import { InvalidOptionError, toError } from '../errors.js';
import type { Logger } from '../logger.js';
import { checkMs } from '../options.js';
import type { TaskState } from '../state.js';
import { RECORD_KINDS } from './operations.js';
import type { AbnormalTask } from './types.js';

/** Options of the watchdog (server option `watchdog`). */
export interface WatchdogOptions {
  /** A task still `sent` (or `waiting-retry`) this long after it was due is reported as `not-started` (default 300 000, GTA's 5 min). */
  sentTimeoutMs?: number;
  /** A task `running` this long is reported as `running-too-long` (default 1 800 000, GTA's 30 min). */
  runningTimeoutMs?: number;
  /** How often the check runs (default 60 000). A run started within the interval before is reported as `redelivered` when it is a redelivery. */
  intervalMs?: number;
}

/** Resolved watchdog settings. */
export interface WatchdogSettings {
  sentTimeoutMs: number;
  runningTimeoutMs: number;
  intervalMs: number;
}

/** Checks and completes watchdog options. */
export function resolveWatchdog(o: WatchdogOptions): WatchdogSettings {
  if (typeof o !== 'object' || o === null) throw new InvalidOptionError('watchdog must be an object');
  return {
    sentTimeoutMs: checkMs('watchdog.sentTimeoutMs', o.sentTimeoutMs ?? 300_000, 1),
    runningTimeoutMs: checkMs('watchdog.runningTimeoutMs', o.runningTimeoutMs ?? 1_800_000, 1),
    intervalMs: checkMs('watchdog.intervalMs', o.intervalMs ?? 60_000, 50),
  };
}

/** Most tasks of one status read per scan of a group. */
const SCAN_LIMIT = 1000;

/**
 * The abnormal tasks of `group` at `now`. `redeliveredSince`: a redelivered run is reported when it
 * started in [redeliveredSince, now) (default: one interval back).
 */
export async function findAbnormal(
  index: TaskIndex,
  group: string,
  s: Omit<WatchdogSettings, 'intervalMs'> & { intervalMs?: number },
  now: number,
  redeliveredSince = now - (s.intervalMs ?? 60_000),
): Promise<AbnormalTask[]> {
  const [sent, retrying, running] = await Promise.all([
    index.list({ group, status: 'sent', until: now - s.sentTimeoutMs, limit: SCAN_LIMIT }),
    index.list({ group, status: 'waiting-retry', until: now - s.sentTimeoutMs, limit: SCAN_LIMIT }),
    index.list({ group, status: 'running', limit: SCAN_LIMIT }),
  ]);
  const out: AbnormalTask[] = [];
  const due = (t: TaskState): number => Math.max(t.retryAt ?? 0, t.updatedAt);
  for (const t of [...sent.items, ...retrying.items]) if (due(t) + s.sentTimeoutMs <= now) out.push({ kind: 'not-started', state: t });
  for (const t of running.items) {
    const started = t.startedAt ?? t.updatedAt;
    if (started + s.runningTimeoutMs <= now) out.push({ kind: 'running-too-long', state: t });
    else if ((t.deliveries ?? 1) > 1 && started >= redeliveredSince && started < now) out.push({ kind: 'redelivered', state: t });
  }
  return out;
}

/** What a watchdog needs from its server. */
export interface WatchdogContext {
  index: TaskIndex;
  records: RecordStore;
  logger: Logger;
  /** This server instance's id (stored in the claims). */
  workerId: string;
  /** The groups this server runs. */
  groups(): string[];
  /** Reports a group's abnormal tasks (the server's `abnormal` event). */
  report(group: string, tasks: AbnormalTask[], at: number): void;
}

/** Runs {@link findAbnormal} every interval for the server's groups, claiming each (group, interval). */
export class Watchdog {
  private timer: NodeJS.Timeout | undefined;
  private busy = false;

  /** @param ctx the server side @param settings resolved options */
  constructor(
    private readonly ctx: WatchdogContext,
    readonly settings: WatchdogSettings,
  ) {}

  /** Starts the periodic check (unref'd; idempotent). */
  start(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => void this.tick(), this.settings.intervalMs);
    this.timer.unref();
  }

  /** Stops it. */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One check of every group (skipped when the previous one still runs). Never rejects. */
  async tick(now = Date.now()): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const { intervalMs } = this.settings;
      const bucket = Math.floor(now / intervalMs);
      for (const group of this.ctx.groups()) {
        const key = `watchdog:${group}:${intervalMs}:${bucket}`;
        if (!(await this.ctx.records.claim(RECORD_KINDS.claims, key, this.ctx.workerId, 2 * intervalMs))) continue;
        // Redeliveries of the previous whole interval: each interval is scanned by one process only.
        const tasks = await findAbnormal(this.ctx.index, group, this.settings, now, (bucket - 1) * intervalMs);
        const inWindow = tasks.filter((t) => t.kind !== 'redelivered' || (t.state.startedAt ?? 0) < bucket * intervalMs);
        if (inWindow.length > 0) this.ctx.report(group, inWindow, now);
      }
    } catch (err) {
      this.ctx.logger.warn('watchdog check failed', { error: toError(err) });
    } finally {
      this.busy = false;
    }
  }
}
