/**
 * The JSON shapes of the dashboard's HTTP API, shared by the server (`dashboard/`) and the browser
 * UI (`dashboard/ui/`). Self-contained (no imports) so the UI, type-checked for the DOM, can use it.
 */

/** Task statuses, as in `src/state.ts`. */
export type WireStatus = 'sent' | 'running' | 'waiting-retry' | 'success' | 'failure' | 'expired' | 'aborted';

/** A stored error. */
export interface WireError {
  /** Error class name. */
  name: string;
  /** Message. */
  message: string;
  /** Its code, when it had one. */
  code?: string;
  /** Worker-side stack. */
  stack?: string;
}

/** An error answer of the API: `{ error: { code, message } }`. */
export interface WireFailure {
  /** The failure. */
  error: { code: string; message: string };
}

/** `GET api/info`. */
export interface WireInfo {
  /** tasuki version. */
  version: string;
  /** Actions hidden and refused. */
  readOnly: boolean;
  /** How the request was authenticated. */
  auth: 'token' | 'basic' | 'none';
  /** Who, as the audit log names them. */
  who: string;
}

/** One group's counts (`client.ops.counts`) with its paused state. */
export interface WireGroup {
  /** Group name. */
  group: string;
  /** Ready messages. */
  ready: number;
  /** Delayed messages. */
  delayed: number;
  /** In flight (leased). */
  inFlight: number;
  /** Dead letters. */
  dead: number;
  /** Paused. */
  paused: boolean;
  /** Indexed tasks by status; null without a task index. */
  statuses: Record<WireStatus, number> | null;
  /** Redelivered runs; null without an index. */
  redelivered: number | null;
  /** Handlers running now (worker registry); null without one. */
  running: number | null;
}

/** A worker (registry entry). */
export interface WireWorker {
  /** Instance id. */
  id: string;
  /** Host. */
  host: string;
  /** Pid. */
  pid: number;
  /** Groups with concurrency, running and paused. */
  groups: Array<{ group: string; concurrency: number; running: number; paused: boolean }>;
  /** Succeeded since start. */
  succeeded: number;
  /** Failed since start. */
  failed: number;
  /** Retries scheduled since start. */
  retried: number;
  /** Start time (epoch ms). */
  startedAt: number;
  /** Last heartbeat (epoch ms). */
  heartbeatAt: number;
  /** tasuki version. */
  version: string;
}

/** Successes and failures per minute of the last hour (oldest first, 60 buckets). */
export interface WireRates {
  /** Start of the first bucket (epoch ms). */
  from: number;
  /** Bucket width (ms). */
  bucketMs: number;
  /** Successes per bucket. */
  success: number[];
  /** Failures per bucket. */
  failure: number[];
  /** True when more tasks finished than were read (counts are lower bounds). */
  partial: boolean;
}

/** `GET api/overview`. */
export interface WireOverview {
  /** Server time (epoch ms). */
  at: number;
  /** Groups with counts and rates (rates null without a task index). */
  groups: Array<WireGroup & { rates: WireRates | null }>;
  /** Live workers; null when the backend keeps no worker registry. */
  workers: WireWorker[] | null;
  /** What this backend cannot show, in words (e.g. Memcache keeps no task index). */
  notes: string[];
}

/** A row of a task list. */
export interface WireTaskRow {
  /** Id. */
  id: string;
  /** Group. */
  group: string;
  /** Task name. */
  name: string;
  /** Status. */
  status: WireStatus;
  /** Retries used. */
  retriesUsed: number;
  /** Deliveries of the current run (absent: 1). */
  deliveries?: number;
  /** Last update (epoch ms). */
  updatedAt: number;
  /** Error, first line. */
  error?: string;
}

/** `GET api/tasks`. */
export interface WireTaskPage {
  /** Rows, newest update first. */
  items: WireTaskRow[];
  /** Next page; null on the last. */
  cursor: string | null;
  /** With an id search: index entries looked at for this page. */
  scanned?: number;
}

/** A value shown in the task page: pretty JSON text, possibly cut. */
export interface WireValue {
  /** Pretty JSON text (the superjson document's JSON part). */
  text: string;
  /** True when `text` was cut (ask again with `full=1`). */
  truncated: boolean;
  /** Length of the whole text. */
  size: number;
}

/** One point of a task's timeline. */
export interface WireEvent {
  /** When (epoch ms). */
  at: number;
  /** What: sent, started, retry due, finished, updated. */
  what: string;
}

/** A step of a flow or workflow, or a child. */
export interface WireStep {
  /** Path or key. */
  key: string;
  /** Step or task name. */
  name: string;
  /** Kind (flow: step, sleep, call…; workflow: task). */
  kind: string;
  /** Status. */
  status: string;
  /** Attempts. */
  attempts: number;
  /** Child or step task id. */
  id?: string;
  /** Error message. */
  error?: string;
}

/** `GET api/task?id=`. */
export interface WireTask {
  /** Id. */
  id: string;
  /** Whether anything is stored for it. */
  found: boolean;
  /** Its state (without the stored wire message). */
  state?: {
    id: string;
    group: string;
    name: string;
    status: WireStatus;
    retriesUsed: number;
    retriesLeft: number;
    error?: WireError;
    sentAt?: number;
    startedAt?: number;
    finishedAt?: number;
    retryAt?: number;
    deliveries?: number;
    updatedAt: number;
  };
  /** Arguments, when the message is stored (failed, expired, aborted tasks). */
  args?: WireValue;
  /** Result value, when it succeeded. */
  value?: WireValue;
  /** Last progress. */
  progress?: WireValue;
  /** Timeline, oldest first. */
  timeline: WireEvent[];
  /** Redeliveries of the current run. */
  redeliveries: number;
  /** Whether `retry` can run it again (its message is stored, or it may be a dead letter). */
  retryable: boolean;
  /** Flow or workflow steps, when it is one. */
  steps?: { kind: 'flow' | 'workflow'; items: WireStep[] };
}

/** A dead letter row. */
export interface WireDeadLetter {
  /** Dead letter id. */
  id: string;
  /** Task id, when the body decodes. */
  task?: string;
  /** Task name, when the body decodes. */
  name?: string;
  /** Reason. */
  reason: string;
  /** When (epoch ms). */
  at: number;
}

/** `GET api/dead`. */
export interface WireDeadPage {
  /** Rows, oldest first. */
  items: WireDeadLetter[];
  /** Offset of the next page; null on the last. */
  next: number | null;
}

/** What an action answered. */
export interface WireActionResult {
  /** A sentence for the user. */
  message: string;
  /** Details (retry report, counts). */
  detail?: unknown;
}

/** `GET api/abnormal`: the watchdog's check on demand. */
export interface WireAbnormal {
  /** Abnormal tasks with why. */
  items: Array<{ kind: 'not-started' | 'running-too-long' | 'redelivered'; task: WireTaskRow }>;
  /** Not started this long after due. */
  sentTimeoutMs: number;
  /** Running longer than this. */
  runningTimeoutMs: number;
  /** Redelivered runs started within this long. */
  intervalMs: number;
}
