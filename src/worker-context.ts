/**
 * What a group worker gets from its server: registered handlers, the broker and backend, the
 * logger, the resolved settings and the event sink.
 */
import type { Backend } from './backend.js';
import type { Broker } from './broker.js';
import type { ServerEvents } from './events.js';
import type { Instrumentation } from './instrumentation.js';
import type { Logger } from './logger.js';
import type { ServerSettings } from './options.js';
import type { AddOptions } from './task.js';

/** A registered handler. */
export interface Registration {
  /** Group. */
  group: string;
  /** Task name. */
  name: string;
  /** The handler as registered (with or without a leading ctl parameter). */
  fn: (...args: never[]) => unknown;
  /** Registration options. */
  options: AddOptions;
}

/** What a group worker needs from its server. */
export interface WorkerContext {
  /** Where messages come from. */
  broker: Broker;
  /** Where states and results go. */
  backend: Backend;
  /** Where the worker logs. */
  logger: Logger;
  /** Resolved server settings. */
  settings: ServerSettings;
  /** Handlers of the group, looked up at message time (so late registrations are seen). */
  lookup(group: string, name: string): Registration | undefined;
  /** Emits a life-cycle event (listener errors are contained). */
  emit<K extends keyof ServerEvents>(event: K, ...args: ServerEvents[K]): void;
  /** Whether anyone listens to `event` (so that events nobody hears are not even built). */
  listens(event: keyof ServerEvents): boolean;
  /** Whether `group` is paused now (`client.ops.pause`): no new task of it starts and nothing is fetched. */
  paused?(group: string): boolean;
  /** Metrics and tracing hooks, when configured. */
  instrumentation?: Instrumentation;
}
