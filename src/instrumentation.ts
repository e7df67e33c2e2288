/**
 * The optional instrumentation seam: what metrics (`tasuki/metrics`) and tracing (`tasuki/otel`) plug
 * into. Passed as the `instrumentation` option of a server or client; absent, it costs one property
 * check per send and per run. The core never imports a metrics or tracing library: those live in
 * modules of their own that implement this interface.
 */
import type { TaskMessage } from './message.js';
import type { Server } from './server.js';
import { toError } from './errors.js';
import type { Logger } from './logger.js';

/** How a delivery was settled with the broker. */
export type SettleKind = 'ack' | 'retry' | 'deadLetter';

/** The instrumentation of one handler run (from just before it starts until the job is done). */
export interface ProcessScope {
  /**
   * Runs the handler (and everything its promise chain does) inside this scope — e.g. with the
   * process span as the active trace context, so that spans the handler creates nest under it.
   */
  run?<T>(fn: () => T): T;
  /** The run ended: `error` when it failed (threw, timed out, was aborted or asked for a retry). */
  ran?(error: Error | undefined): void;
  /** The delivery was settled with the broker (after the outcome was written). */
  settled?(how: SettleKind): void;
  /** The job is done (settled, handed back, or left for redelivery). Called once, last. */
  end?(): void;
}

/** Called when a send settled: `error` when it failed. */
export type SendDone = (error?: Error) => void;

/** Hooks a server and its clients call; every member is optional. */
export interface Instrumentation {
  /** A server was built with this instrumentation (subscribe to its events, read its slots). */
  server?(server: Server): void;
  /**
   * A client is about to encode and publish `msg` (once per message, also per message of a
   * `sendMany`). It may add wire fields such as `msg.trace`. Returns what to call when the send settled.
   */
  send?(msg: TaskMessage): SendDone | undefined;
  /** A claimed task's handler is about to run (`msg` as decoded). Returns the scope of the run. */
  process?(msg: TaskMessage): ProcessScope | undefined;
}

/** The `instrumentation` option: one or several (called in order; the first one's `run` is outermost). */
export type InstrumentationOption = Instrumentation | ReadonlyArray<Instrumentation>;

/**
 * One instrumentation for an option, every hook guarded (a hook that throws is logged and skipped;
 * the task goes on). Undefined when there is none: the hot path then skips every hook.
 */
export function resolveInstrumentation(option: InstrumentationOption | undefined, logger: Logger): Instrumentation | undefined {
  if (option === undefined) return undefined;
  const list: ReadonlyArray<Instrumentation> = Array.isArray(option) ? (option as ReadonlyArray<Instrumentation>) : [option as Instrumentation];
  if (list.length === 0) return undefined;
  return combine(list, logger);
}

/** Several instrumentations as one, each hook call guarded. */
function combine(list: ReadonlyArray<Instrumentation>, logger: Logger): Instrumentation {
  const safely = (hook: string, fn: () => void): void => {
    try {
      fn();
    } catch (err) {
      logger.error('an instrumentation hook threw', { hook, error: toError(err) });
    }
  };
  return {
    server(server) {
      for (const i of list) safely('server', () => i.server?.(server));
    },
    send(msg) {
      const done: SendDone[] = [];
      for (const i of list) {
        safely('send', () => {
          const d = i.send?.(msg);
          if (d !== undefined) done.push(d);
        });
      }
      if (done.length === 0) return undefined;
      return (error) => {
        for (const d of done) safely('send done', () => d(error));
      };
    },
    process(msg) {
      const scopes: ProcessScope[] = [];
      for (const i of list) {
        safely('process', () => {
          const s = i.process?.(msg);
          if (s !== undefined) scopes.push(s);
        });
      }
      if (scopes.length === 0) return undefined;
      return {
        run: <T>(fn: () => T): T => scopes.reduceRight<() => T>((inner, s) => (s.run === undefined ? inner : () => runInside(s, inner, logger)), fn)(),
        ran: (error) => scopes.forEach((s) => safely('ran', () => s.ran?.(error))),
        settled: (how) => scopes.forEach((s) => safely('settled', () => s.settled?.(how))),
        end: () => scopes.forEach((s) => safely('end', () => s.end?.())),
      };
    },
  };
}

/** `scope.run(fn)`; when the hook itself throws before calling `fn`, `fn` runs without it (an error of `fn` is `fn`'s). */
function runInside<T>(scope: ProcessScope, fn: () => T, logger: Logger): T {
  let called = false;
  const inner = (): T => {
    called = true;
    return fn();
  };
  try {
    return (scope.run as <U>(f: () => U) => U)(inner);
  } catch (err) {
    if (called) throw err;
    logger.error('an instrumentation hook threw', { hook: 'run', error: toError(err) });
    return fn();
  }
}
