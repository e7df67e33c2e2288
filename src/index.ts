/**
 * tasuki — a distributed task queue for Node.js.
 *
 * ```ts
 * import { Server } from 'tasuki';
 * const server = new Server();                       // in-memory broker + backend
 * const add = server.add('math', 'add', (a: number, b: number) => a + b);
 * await server.run('math', 4);
 * const client = server.client();
 * const id = await client.send(add, 1, 2);           // arguments type-checked
 * const result = await client.getResult(id, 5000);   // result.value: number
 * ```
 * Brokers and backends live on their own import paths (`tasuki/brokers/redis`, `tasuki/backends/redis`, …).
 */
export { Server } from './server.js';
export { Client } from './client.js';
export { DEFAULT_SEND_TIMEOUT_MS, DEFAULT_NOT_FOUND_AFTER_MS, type ClientOptions } from './client-options.js';
export { TaskResult, type ResultAt, type SucceededResult } from './result.js';
export type { TaskCtl } from './ctl.js';
export { taskRef, type TaskRef, type TaskId, type AddOptions, type ArgSpec, type ArgType, type PlainHandler, type PlainHandlerCheck, type FirstIsCtl, type CtlHandler, type HandlerArgs, type HandlerResult } from './task.js';
export type { ServerOptions, CommonOptions, SendOptions } from './options.js';
export { DEFAULT_BACKOFF, DEFAULT_RETRY_COUNT, DEFAULT_EXPIRES } from './options.js';
export type { ServerEvents, TaskEvent } from './events.js';
export type { Instrumentation, InstrumentationOption, ProcessScope, SendDone, SettleKind } from './instrumentation.js';
export { consoleLogger, silentLogger, type Logger, type LogLevel, type LogFields } from './logger.js';
export type { Broker, Delivery, DeadLetter, DeadLetterReason, FetchOptions, PublishOptions, QueueCounts } from './broker.js';
export type { FetchLimits, DispatchFeature, RateLimit, WaitReason } from './broker.js';
export type { RateLimitStore, TokenGrant } from './rate-limit-store.js';
export { DEFAULT_PRIORITY, MAX_PRIORITY, MIN_PRIORITY, type GroupOptions } from './limits.js';
export type { Backend, Expiry, StateWrite, WriteGuard, WriteOutcome } from './backend.js';
export type { IndexQuery, IndexPage, TaskIndex, RecordStore, StoredRecord } from './backend.js';
export { Operations } from './ops/operations.js';
export type { GroupCounts, ListOptions, WorkerInfo, WorkerGroupInfo, RetryReport, AbnormalTask, AbnormalKind } from './ops/types.js';
export type { OpsServerOptions } from './ops/server-ops.js';
export { findAbnormal, type WatchdogOptions } from './ops/watchdog.js';
export { TASUKI_VERSION } from './version.js';
export { TASK_STATUSES, FINAL_STATUSES, isFinalStatus, parseTaskState, encodeTaskState, type TaskState, type TaskStatus, type StoredError } from './state.js';
export {
  WIRE_VERSION,
  MAX_WIRE_ID_CHARS,
  MAX_VALUE_DEPTH,
  encodeMessage,
  decodeMessage,
  encodeValue,
  decodeValue,
  encodeValueText,
  decodeValueText,
  backoffDelay,
  MessageDecodeError,
  type TaskMessage,
  type Backoff,
  type EncodedValue,
  type PartialIds,
} from './message.js';
export { assertName, NAME_PATTERN } from './names.js';
export { Schedules } from './schedule/api.js';
export type { ScheduleDefinition, ScheduleTiming, ScheduleOptions, ScheduleCatchup, ScheduleOverlap, ScheduleSendOptions, ScheduleInfo } from './schedule/types.js';
export type { ScheduleStore, StoredSchedule } from './schedule/store.js';
export * from './errors.js';
export type { Flow, FlowHandler, FlowOptions, FlowCallbackInfo, StepOptions, StepContext, CallOptions, CallManyOptions, MapOptions, WaitOptions, FanOutPolicy } from './flow/types.js';
export type { FlowInfo, FlowStepInfo, RestartOptions } from './flow/client-ops.js';
export type { FlowJournalStore, JournalEntry, JournalEntryKind, JournalEntryStatus, JournalPutMode, JournalPutOutcome, JournalSnapshot, SuspendOutcome } from './journal.js';
export { FlowDivergedError, FlowLimitError, FlowRunningError, StepFailedError, ChildFailedError, SignalTimeoutError } from './flow/errors.js';
export { task, chain, group, chord, type BindablePrefix, type DropArgs, type CallbackCheck } from './workflow/build.js';
export type { Step, TaskStep, StepControls, StepIn, StepOut, StepOuts, StepMismatch, StepNeedsArguments, ChainCheck, NestedChainCheck, ItemsCheck, LastOut, GroupValue, GroupPolicy, GroupOptions as WorkflowGroupOptions, Settled, WorkflowNode, WireControls, WorkflowInfo, WorkflowStepInfo } from './workflow/types.js';
export { WORKFLOW_TASK } from './workflow/flow.js';
