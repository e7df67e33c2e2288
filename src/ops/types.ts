/** Types of the operations layer: counts, task lists, the worker registry, retries, abnormal tasks. */
import type { QueueCounts } from '../broker.js';
import type { TaskState, TaskStatus } from '../state.js';

/** Counts of one group: the broker's queue depths, the backend's task statuses, pause state. */
export interface GroupCounts extends QueueCounts {
  /** The group. */
  group: string;
  /** Whether the group is paused (workers start no new task of it). */
  paused: boolean;
  /**
   * Indexed tasks by status (`running`, `failure`, …), or `null` when the backend keeps no task index
   * (Memcache). Statuses with none are 0.
   */
  statuses: Record<TaskStatus, number> | null;
  /** Indexed tasks whose current run was delivered more than once (a worker died or lost its lease); `null` without an index. */
  redelivered: number | null;
  /** Handlers running now on the group's live workers, from the worker registry; `null` without one. */
  running: number | null;
}

/** Options of `ops.list`. */
export interface ListOptions {
  /** Only tasks in this status. */
  status?: TaskStatus;
  /** Only tasks of this name. */
  name?: string;
  /** Only tasks updated at or after this time (Date or epoch ms). */
  since?: Date | number;
  /** Only tasks updated before this time (Date or epoch ms). */
  until?: Date | number;
  /** Page size, 1 to 1000 (default 50). */
  limit?: number;
  /** The `cursor` of the previous page. */
  cursor?: string;
}

/** One group as a worker reports it. */
export interface WorkerGroupInfo {
  /** Group name. */
  group: string;
  /** Its concurrency bound. */
  concurrency: number;
  /** Handlers holding a slot now. */
  running: number;
  /** Whether the worker sees the group as paused. */
  paused: boolean;
}

/** A live worker process (a server running at least one group), as its last heartbeat told. */
export interface WorkerInfo {
  /** Unique id of the server instance (`host:pid:random`). */
  id: string;
  /** Host name. */
  host: string;
  /** Process id. */
  pid: number;
  /** Groups it runs. */
  groups: WorkerGroupInfo[];
  /** Tasks that concluded successfully since it started. */
  succeeded: number;
  /** Tasks that failed for good since it started. */
  failed: number;
  /** Retries it scheduled since it started. */
  retried: number;
  /** When it started (epoch ms). */
  startedAt: number;
  /** When it last reported (epoch ms). */
  heartbeatAt: number;
  /** tasuki version. */
  version: string;
}

/** What `ops.retry` did, per id. */
export interface RetryReport {
  /** Ids sent again. */
  retried: string[];
  /** Ids not retried, with why (not found, not finished, succeeded, no stored message). */
  skipped: Array<{ id: string; reason: string }>;
}

/** Why the watchdog reports a task. */
export type AbnormalKind = 'not-started' | 'running-too-long' | 'redelivered';

/** A task the watchdog found abnormal. */
export interface AbnormalTask {
  /** What is wrong with it. */
  kind: AbnormalKind;
  /** Its state when found. */
  state: TaskState;
}
