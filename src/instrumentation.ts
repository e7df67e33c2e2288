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

/** Logs a hook that threw (the task goes on). */
function hookThrew(logger: Logger, hook: string, err: unknown): void {
  logger.error('an instrumentation hook threw', { hook, error: toError(err) });
}

/** Several instrumentations as one, each hook call guarded. Per task: one array and one scope object. */
function combine(list: ReadonlyArray<Instrumentation>, logger: Logger): Instrumentation {
  return {
    server(server) {
      for (const i of list) {
        try {
          i.server?.(server);
        } catch (err) {
          hookThrew(logger, 'server', err);
        }
      }
    },
    send(msg) {
      let done: SendDone[] | undefined;
      for (const i of list) {
        try {
          const d = i.send?.(msg);
          if (d !== undefined) (done ??= []).push(d);
        } catch (err) {
          hookThrew(logger, 'send', err);
        }
      }
      if (done === undefined) return undefined;
      const all = done;
      return (error) => {
        for (const d of all) {
          try {
            d(error);
          } catch (err) {
            hookThrew(logger, 'send done', err);
          }
        }
      };
    },
    process(msg) {
      let scopes: ProcessScope[] | undefined;
      for (const i of list) {
        try {
          const s = i.process?.(msg);
          if (s !== undefined) (scopes ??= []).push(s);
        } catch (err) {
          hookThrew(logger, 'process', err);
        }
      }
      return scopes === undefined ? undefined : new Scopes(scopes, logger);
    },
  };
}

/** The scopes of one run as one, each call guarded; `run` nests them (the first outermost). */
class Scopes implements ProcessScope {
  /** Runs `fn` inside every scope's `run`; absent when no scope has one (the worker then calls the handler directly). */
  readonly run: (<T>(fn: () => T) => T) | undefined;

  /** @param scopes the scopes, outermost first @param logger where a throwing hook is logged */
  constructor(
    private readonly scopes: ProcessScope[],
    private readonly logger: Logger,
  ) {
    this.run = scopes.some((x) => x.run !== undefined) ? (fn) => this.runFrom(0, fn) : undefined;
  }

  private runFrom<T>(index: number, fn: () => T): T {
    const scope = this.scopes[index];
    if (scope === undefined) return fn();
    if (scope.run === undefined) return this.runFrom(index + 1, fn);
    let called = false;
    const inner = (): T => {
      called = true;
      return this.runFrom(index + 1, fn);
    };
    try {
      return scope.run(inner);
    } catch (err) {
      // The hook itself threw before running the handler: run it without that scope.
      if (called) throw err;
      hookThrew(this.logger, 'run', err);
      return inner();
    }
  }

  /** Tells every scope how the run ended. */
  ran(error: Error | undefined): void {
    for (const s of this.scopes) {
      try {
        s.ran?.(error);
      } catch (err) {
        hookThrew(this.logger, 'ran', err);
      }
    }
  }

  /** Tells every scope how the delivery was settled. */
  settled(how: SettleKind): void {
    for (const s of this.scopes) {
      try {
        s.settled?.(how);
      } catch (err) {
        hookThrew(this.logger, 'settled', err);
      }
    }
  }

  /** Ends every scope. */
  end(): void {
    for (const s of this.scopes) {
      try {
        s.end?.();
      } catch (err) {
        hookThrew(this.logger, 'end', err);
      }
    }
  }
}
