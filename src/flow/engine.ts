/**
 * One run of a durable flow: the `flow` object handed to the flow function. Every operation takes
 * the next position in code order and a key (name + occurrence), is checked against the journal
 * (divergence), and either returns what the journal holds, does its work and journals it, or
 * suspends: it never settles, and once no operation of the run is busy the run ends with the
 * earliest wake time wanted ({@link RunEnd} `suspend`), freeing the worker slot.
 */
import type { Backend } from '../backend.js';
import type { Broker } from '../broker.js';
import { InvalidOptionError } from '../errors.js';
import type { JournalEntry, JournalEntryKind } from '../journal.js';
import { decodeValueText } from '../message.js';
import { NAME_PATTERN } from '../names.js';
import { checkMs } from '../options.js';
import type { TaskRef } from '../task.js';
import { callChildren, type ChildDeps } from './children.js';
import { callFanIn, type FanItem } from './fan-in.js';
import { FlowLimitError, SignalTimeoutError } from './errors.js';
import type { FlowTarget } from './ids.js';
import type { JournalView } from './journal-view.js';
import { runStep, type StepDeps } from './steps.js';
import type { CallManyOptions, CallOptions, Flow, FlowOptions, MapOptions, StepContext, StepOptions, WaitOptions } from './types.js';

/** Returned by an operation's body that suspends the run. */
export const SUSPEND: unique symbol = Symbol('suspend');
/** An operation body's result: its value, or {@link SUSPEND}. */
export type OpResult<T> = T | typeof SUSPEND;

/** How a run ended. */
export type RunEnd =
  | { kind: 'return'; value: unknown }
  | { kind: 'throw'; error: unknown }
  | { kind: 'fatal'; error: Error }
  | { kind: 'suspend'; at: number }
  | { kind: 'aborted'; reason: unknown };

/** What a run needs. */
export interface RunDeps {
  /** The flow itself (children name it as their parent). */
  target: FlowTarget;
  /** Restart generation. */
  gen: number;
  /** The run's view of the journal. */
  view: JournalView;
  /** Where child states are read and written. */
  backend: Backend;
  /** Where child messages are published. */
  broker: Broker;
  /** Expiry of child states (seconds). */
  ttl: number;
  /** The flow's registration options. */
  options: FlowOptions;
  /** Fires when the run must end (abort, timeout, shutdown). */
  signal: AbortSignal;
  /** A step (sleep, wait, call...) was journaled final by this run. */
  stepDone(entry: JournalEntry): void;
}

/** The flow object of one run. */
export class FlowRun implements Flow, StepDeps, ChildDeps {
  /** @inheritdoc */
  readonly id: string;
  /** @inheritdoc */
  readonly signal: AbortSignal;
  private seq = 0;
  private ops = 0;
  private readonly occurrences = new Map<string, number>();
  private readonly waits = new Map<string, number>();
  private busy = 0;
  private readonly wakes: number[] = [];
  private idleCheck = false;
  private finish: ((end: RunEnd) => void) | undefined;
  private ended = false;

  /** @param deps what the run works with */
  constructor(readonly deps: RunDeps) {
    this.id = deps.target.id;
    this.signal = deps.signal;
  }

  /** Runs the flow function until it returns, throws, fails for good or suspends. */
  execute(fn: (flow: Flow, ...args: unknown[]) => unknown, args: unknown[]): Promise<RunEnd> {
    return new Promise<RunEnd>((resolve) => {
      this.finish = (end) => {
        if (this.ended) return;
        this.ended = true;
        resolve(end);
      };
      const onAbort = (): void => this.finish?.({ kind: 'aborted', reason: this.signal.reason });
      if (this.signal.aborted) return onAbort();
      this.signal.addEventListener('abort', onAbort, { once: true });
      let ret: unknown;
      try {
        ret = fn(this, ...args);
      } catch (error) {
        this.finish({ kind: 'throw', error });
        return;
      }
      Promise.resolve(ret).then(
        (value) => this.finish?.({ kind: 'return', value }),
        (error: unknown) => this.finish?.({ kind: 'throw', error }),
      );
    });
  }

  /** Whether the run has ended (late operations then do nothing). */
  get over(): boolean {
    return this.ended;
  }

  /**
   * Takes the next position for an operation of `kind` named `name` (counting `items` more
   * operations for a fan-out): checks the name, the step limit and the journal. Undefined when the
   * run failed for good (limit, divergence): the caller then suspends forever.
   */
  begin(kind: JournalEntryKind, name: string, items = 0): { key: string; seq: number } | undefined {
    if (typeof name !== 'string' || !NAME_PATTERN.test(name)) {
      throw new InvalidOptionError(`invalid step name ${JSON.stringify(name)}: use 1 to 128 characters of A-Z a-z 0-9 _ . : -`);
    }
    const seq = this.seq++;
    const n = this.occurrences.get(name) ?? 0;
    this.occurrences.set(name, n + 1);
    const key = `${name}#${n}`;
    this.ops += 1 + items;
    const max = this.deps.options.maxSteps ?? 1000;
    if (this.ops > max) return this.fail(new FlowLimitError(max));
    const diverged = this.deps.view.check(seq, kind, key);
    if (diverged !== undefined) return this.fail(diverged);
    return { key, seq };
  }

  /** Ends the run with a failure no flow code can catch. */
  private fail(error: Error): undefined {
    this.finish?.({ kind: 'fatal', error });
    return undefined;
  }

  /** Runs an operation body, counting it as busy; a suspended or failed-for-good operation never settles. */
  async track<T>(body: () => Promise<OpResult<T>>): Promise<T> {
    if (this.ended) return never();
    this.busy++;
    let out: OpResult<T>;
    try {
      out = await body();
    } finally {
      this.busy--;
      this.idle();
    }
    if (out === SUSPEND || this.ended) return never();
    return out;
  }

  /** The operation wants the run to end until `at`; returns {@link SUSPEND}. */
  suspend(at: number): typeof SUSPEND {
    this.wakes.push(at);
    return SUSPEND;
  }

  /** When nothing is busy and something wants to sleep, the run ends (after pending continuations ran). */
  private idle(): void {
    if (this.busy > 0 || this.wakes.length === 0 || this.idleCheck || this.ended) return;
    this.idleCheck = true;
    setImmediate(() => {
      this.idleCheck = false;
      if (this.busy === 0 && this.wakes.length > 0) this.finish?.({ kind: 'suspend', at: Math.min(...this.wakes) });
    });
  }

  /** @inheritdoc */
  step<T>(name: string, fn: (step: StepContext) => T | Promise<T>, options: StepOptions = {}): Promise<Awaited<T>> {
    const pos = this.begin('step', name);
    if (pos === undefined) return never();
    return this.track(() => runStep(this, pos.key, name, pos.seq, 'step', fn, options));
  }

  /** @inheritdoc */
  sleep(name: string, ms: number): Promise<void> {
    checkMs('sleep', ms, 0);
    const pos = this.begin('sleep', name);
    if (pos === undefined) return never();
    return this.track(async () => {
      let e = this.deps.view.get(pos.key);
      if (e === undefined) {
        const now = Date.now();
        e = (await this.deps.view.put({ key: pos.key, name, kind: 'sleep', seq: pos.seq, status: 'pending', attempts: 0, startedAt: now, until: now + ms }, 'absent')).entry;
      }
      const until = e.until ?? 0;
      return Date.now() >= until ? undefined : this.suspend(until);
    });
  }

  /** @inheritdoc */
  call<A extends unknown[], R>(name: string, ref: TaskRef<A, R>, ...args: A): Promise<R> {
    return this.callWith(name, ref, args, {});
  }

  /** @inheritdoc */
  callWith<A extends unknown[], R>(name: string, ref: TaskRef<A, R>, args: A, options: CallOptions): Promise<R> {
    const pos = this.begin('call', name);
    if (pos === undefined) return never();
    return this.track(async () => {
      const out = await callChildren(this, pos.key, name, pos.seq, 'call', ref, [args], { ...options, onFailure: 'failFast' });
      return out === SUSPEND ? SUSPEND : (out[0] as R);
    });
  }

  /** @inheritdoc */
  callMany<A extends unknown[], R>(name: string, ref: TaskRef<A, R>, argsList: ReadonlyArray<A>, options: CallManyOptions = {}): Promise<R[]> {
    if (!Array.isArray(argsList)) throw new InvalidOptionError('callMany needs an array of argument lists');
    const pos = this.begin('calls', name, argsList.length);
    if (pos === undefined) return never();
    return this.track(async () => (await callChildren(this, pos.key, name, pos.seq, 'calls', ref, argsList, options)) as OpResult<R[]>);
  }

  /**
   * A workflow's fan-out of tasks: every child sent at once and counted in (`fan-in.ts`) instead of
   * each waking the flow; values in order (fail fast), or with `settled` one outcome per child.
   * Journal keys as `callMany`'s. Not part of {@link Flow}.
   */
  fanIn(name: string, items: ReadonlyArray<FanItem>, settled: boolean): Promise<unknown[]> {
    const pos = this.begin('calls', name, items.length);
    if (pos === undefined) return never();
    return this.track(async () => callFanIn(this, pos.key, name, pos.seq, items, settled));
  }

  /** @inheritdoc */
  map<T, R>(name: string, items: ReadonlyArray<T>, fn: (item: T, index: number, step: StepContext) => R | Promise<R>, options: MapOptions = {}): Promise<Array<Awaited<R>>> {
    if (!Array.isArray(items)) throw new InvalidOptionError('map needs an array of items');
    const pos = this.begin('map', name, items.length);
    if (pos === undefined) return never();
    const concurrency = options.concurrency ?? 8;
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new InvalidOptionError(`concurrency must be a whole number ≥ 1, got ${String(concurrency)}`);
    return this.track(async () => {
      const out = new Array<Awaited<R>>(items.length);
      let next = 0;
      let suspended = false;
      let failure: { error: unknown } | undefined;
      const worker = async (): Promise<void> => {
        while (failure === undefined && next < items.length && !this.ended) {
          const i = next++;
          const item = items[i] as T;
          try {
            const r = await runStep(this, `${pos.key}[${i}]`, name, pos.seq, 'step', (s) => fn(item, i, s), options);
            if (r === SUSPEND) suspended = true;
            else out[i] = r as Awaited<R>;
          } catch (error) {
            failure ??= { error };
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
      if (failure !== undefined) throw failure.error;
      return suspended ? SUSPEND : out;
    });
  }

  /** @inheritdoc */
  waitFor<T = unknown>(name: string, options: WaitOptions = {}): Promise<T> {
    const timeoutMs = options.timeoutMs;
    if (timeoutMs !== undefined) checkMs('timeoutMs', timeoutMs, 0);
    const pos = this.begin('wait', name);
    if (pos === undefined) return never();
    const index = this.waits.get(name) ?? 0;
    this.waits.set(name, index + 1);
    const { view } = this.deps;
    return this.track(async () => {
      let e = view.get(pos.key);
      const base = { key: pos.key, name, kind: 'wait' as const, seq: pos.seq, attempts: 0 };
      const decided = (entry: JournalEntry): T => {
        if (entry.status === 'done') return (entry.value === undefined ? undefined : decodeValueText(entry.value)) as T;
        throw new SignalTimeoutError(name, (entry.until ?? 0) - entry.startedAt);
      };
      if (e !== undefined && e.status !== 'pending') return decided(e);
      const now = Date.now();
      const payload = view.signal(name, index);
      if (payload !== undefined) {
        const out = await view.put({ ...base, status: 'done', startedAt: e?.startedAt ?? now, finishedAt: now, value: payload }, 'notFinal');
        if (out.written) this.deps.stepDone(out.entry);
        return decided(out.entry);
      }
      if (e === undefined) {
        const pending: JournalEntry = { ...base, status: 'pending', startedAt: now };
        if (timeoutMs !== undefined) pending.until = now + timeoutMs;
        e = (await view.put(pending, 'absent')).entry;
      }
      if (e.until !== undefined && Date.now() >= e.until) {
        const out = await view.put({ ...e, status: 'failed', finishedAt: Date.now(), error: { name: 'SignalTimeoutError', code: 'ERR_SIGNAL_TIMEOUT', message: `no signal "${name}" in time` } }, 'notFinal');
        if (out.written) this.deps.stepDone(out.entry);
        return decided(out.entry);
      }
      return this.suspend(e.until ?? Date.now() + (this.deps.options.recheckMs ?? 60_000));
    });
  }

  /** @inheritdoc */
  patched(id: string): boolean {
    const there = this.deps.view.at(this.seq);
    if (there !== undefined) {
      if (there.kind !== 'patch' || there.name !== id) return false;
      this.seq++;
      return true;
    }
    if (this.deps.view.reached(this.seq)) return false;
    const seq = this.seq++;
    const now = Date.now();
    void this.track(async () => {
      await this.deps.view.put({ key: `!patch:${id}#${seq}`, name: id, kind: 'patch', seq, status: 'done', attempts: 0, startedAt: now }, 'absent');
      return undefined;
    }).catch(() => undefined);
    return true;
  }
}

/** A promise that never settles (a suspended operation). */
function never<T>(): Promise<T> {
  return new Promise<T>(() => undefined);
}
