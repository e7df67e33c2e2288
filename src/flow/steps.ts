/**
 * Running one step: return its journaled value, or run its body (attempt by attempt, each with its
 * own timeout and signal) and journal the value, a pending retry (the run then sleeps durably until
 * the next attempt) or the failure.
 */
import { TaskTimeoutError, ValueTooLargeError, toError } from '../errors.js';
import type { JournalEntry } from '../journal.js';
import { DEFAULT_MAX_VALUE_BYTES } from '../journal.js';
import { backoffDelay, decodeValueText, encodeValueText } from '../message.js';
import { resolveBackoff } from '../options.js';
import { storeError } from '../state.js';
import { setLongTimeout, type LongTimer } from '../timers.js';
import { StepFailedError } from './errors.js';
import type { OpResult, RunDeps } from './engine.js';
import type { StepContext, StepOptions } from './types.js';

/** What a step needs from its run. */
export interface StepDeps {
  readonly deps: RunDeps;
  /** Whether the run has ended. */
  readonly over: boolean;
  /** Asks for the run to end until `at`. */
  suspend(at: number): OpResult<never>;
}

const DEFAULT_STEP_BACKOFF = { type: 'fixed', delayMs: 1000 } as const;

/** The value of a final entry, or its error thrown. */
export function entryValue(entry: JournalEntry): unknown {
  if (entry.status === 'failed') throw new StepFailedError(entry.key, entry.error ?? { name: 'Error', message: 'step failed' });
  return entry.value === undefined ? undefined : decodeValueText(entry.value);
}

/** Runs (or replays) step `key`. */
export async function runStep<T>(
  run: StepDeps,
  key: string,
  name: string,
  seq: number,
  kind: 'step',
  fn: (step: StepContext) => T | Promise<T>,
  options: StepOptions,
): Promise<OpResult<Awaited<T>>> {
  const { view } = run.deps;
  const stored = view.get(key);
  if (stored !== undefined && stored.status !== 'pending') return entryValue(stored) as Awaited<T>;
  if (stored?.until !== undefined && Date.now() < stored.until) return run.suspend(stored.until);
  const retryCount = options.retryCount ?? 0;
  const backoff = resolveBackoff(options.backoff ?? DEFAULT_STEP_BACKOFF);
  const startedAt = stored?.startedAt ?? Date.now();
  let attempts = stored?.attempts ?? 0;
  const base = { key, name, kind, seq, startedAt };
  const final = async (entry: JournalEntry): Promise<Awaited<T>> => {
    const out = await view.put(entry, 'notFinal');
    if (out.written) run.deps.stepDone(out.entry);
    return entryValue(out.entry) as Awaited<T>;
  };
  for (;;) {
    if (run.over) return run.suspend(Date.now());
    attempts++;
    const attempt = await attemptOnce(run, fn, attempts, options.timeout);
    if (run.over || run.deps.signal.aborted) return run.suspend(Date.now());
    if (attempt.ok) {
      let text: string | undefined;
      const max = run.deps.options.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES;
      try {
        text = attempt.value === undefined ? undefined : encodeValueText(attempt.value, `value of step ${key}`);
        if (text !== undefined && text.length > max) throw new ValueTooLargeError(text.length, max);
      } catch (err) {
        return final({ ...base, status: 'failed', attempts, finishedAt: Date.now(), error: storeError(toError(err), 4096, false) });
      }
      const entry: JournalEntry = { ...base, status: 'done', attempts, finishedAt: Date.now() };
      if (text !== undefined) entry.value = text;
      try {
        return await final(entry);
      } catch (err) {
        const e = toError(err);
        if ((e as { code?: unknown }).code !== 'ERR_VALUE_TOO_LARGE') throw e;
        return final({ ...base, status: 'failed', attempts, finishedAt: Date.now(), error: storeError(e, 4096, false) });
      }
    }
    const error = storeError(attempt.error);
    if (attempts > retryCount) return final({ ...base, status: 'failed', attempts, finishedAt: Date.now(), error });
    const delay = backoffDelay(backoff, attempts - 1);
    const until = Date.now() + delay;
    await view.put({ ...base, status: 'pending', attempts, error, until }, 'notFinal');
    if (delay > 0) return run.suspend(until);
  }
}

/** One attempt of a step body, racing its timeout; the attempt's signal follows the run's. */
async function attemptOnce<T>(
  run: StepDeps,
  fn: (step: StepContext) => T | Promise<T>,
  attempt: number,
  timeoutMs: number | undefined,
): Promise<{ ok: true; value: Awaited<T> } | { ok: false; error: Error }> {
  const controller = new AbortController();
  const outer = run.deps.signal;
  const relay = (): void => controller.abort(outer.reason);
  // An outer signal already aborted fires no 'abort' event: pass its state on at once.
  if (outer.aborted) relay();
  else outer.addEventListener('abort', relay, { once: true });
  let timer: LongTimer | undefined;
  try {
    const body = Promise.resolve().then(() => fn({ signal: controller.signal, attempt }));
    const raced =
      timeoutMs === undefined
        ? body
        : Promise.race([
            body,
            new Promise<never>((_, reject) => {
              timer = setLongTimeout(() => {
                const err = new TaskTimeoutError(timeoutMs);
                controller.abort(err);
                reject(err);
              }, timeoutMs);
            }),
          ]);
    return { ok: true, value: await raced };
  } catch (err) {
    return { ok: false, error: toError(err) };
  } finally {
    timer?.clear();
    outer.removeEventListener('abort', relay);
  }
}
