/**
 * The sends of a schedule, each an idempotent explicit-id send (so that any number of ticks, upserts
 * and re-runs after a crash send each of them once): a fire (the user's task, id `<name>@<ISO time>`),
 * a tick (the next fire time's bookkeeping, held by the broker until then) and a wait (a re-check of
 * a buffered fire).
 */
import { createHash } from 'node:crypto';
import type { Client } from '../client.js';
import { decodeValue } from '../message.js';
import type { SendOptions } from '../options.js';
import type { TaskId } from '../task.js';
import { fireId, tickId, waitId, type ScheduleRecord, type TickPlan } from './record.js';

/** Task name of the tick handler every server registers for the groups it runs. */
export const TICK_TASK = 'tasuki.schedule-tick';
/** Task name of the wait handler (overlap `'buffer'`). */
export const WAIT_TASK = 'tasuki.schedule-wait';

/**
 * Ticks retry (store or backend unreachable) for a long time: a schedule must not end because a
 * service restarted. The client's send defaults do not apply to them (every control is set here).
 */
const TICK_SEND: SendOptions = {
  retryCount: 1000,
  backoff: { type: 'exponential', delayMs: 500, maxDelayMs: 30_000, jitter: 0.2 },
  runAfter: undefined,
  runAt: undefined,
  expireAt: undefined,
  timeout: undefined,
};

/** Delay of the `attempt`-th wait of a buffered fire: 200 ms doubling up to 2 s. */
export function waitDelayMs(attempt: number): number {
  return Math.min(2000, 200 * 2 ** Math.min(attempt, 4));
}

/** Deterministic jitter of a fire in `[0, jitterMs)`, derived from its id (every sender agrees). */
export function jitterOf(id: string, jitterMs: number): number {
  if (jitterMs <= 0) return 0;
  const h = createHash('sha256').update(id).digest();
  return h.readUInt32BE(0) % Math.ceil(jitterMs);
}

/** Sends the fire of `rec` at `at` (or, with `id`, a manual one now); resolves with its task id. */
export async function sendFire(client: Client, rec: ScheduleRecord, at: number, id = fireId(rec.name, at)): Promise<TaskId> {
  const def = rec.def;
  // Timing is the schedule's own: the client's runAfter/runAt/expireAt defaults do not apply (retries and timeout defaults do, unless set in `send`).
  const opts: SendOptions = { id, runAfter: undefined, runAt: undefined, expireAt: undefined };
  if (def.send.retryCount !== null) opts.retryCount = def.send.retryCount;
  if (def.send.backoff !== null) opts.backoff = def.send.backoff;
  if (def.send.timeout !== null) opts.timeout = def.send.timeout;
  if (def.send.expireAfterMs !== null) opts.expireAt = at + def.send.expireAfterMs;
  const jitter = jitterOf(id, def.jitterMs);
  if (jitter > 0) opts.runAt = at + jitter;
  const args = decodeValue(def.args) as unknown[];
  return client.with(opts).send(def.group, def.task, ...args);
}

/** Sends the fires of a tick's plan, in order (fixed ids: a fire already sent is not sent twice). */
export async function sendFires(client: Client, rec: ScheduleRecord, plan: TickPlan): Promise<void> {
  for (const at of plan.fires) await sendFire(client, rec, at);
}

/**
 * Sends the fires of the last tick's plan when they may not all have been sent (its process died
 * between writing the plan and sending them; see `TickPlan.unsent`); nothing otherwise.
 */
export async function sendUnsentFires(client: Client, rec: ScheduleRecord): Promise<void> {
  if (rec.lastTick?.unsent === true) await sendFires(client, rec, rec.lastTick);
}

/** Sends the tick of `rec` due at `at`. */
export async function sendTick(client: Client, rec: ScheduleRecord, at: number): Promise<void> {
  await client.with({ ...TICK_SEND, id: tickId(rec.name, rec.gen, at), runAt: at }).send(rec.def.group, TICK_TASK, rec.name, rec.gen, at);
}

/** Sends the `attempt`-th wait of the fire buffered at `at`. */
export async function sendWait(client: Client, rec: ScheduleRecord, at: number, attempt: number): Promise<void> {
  await client
    .with({ ...TICK_SEND, id: waitId(rec.name, rec.gen, at, attempt), runAfter: waitDelayMs(attempt) })
    .send(rec.def.group, WAIT_TASK, rec.name, rec.gen, at, attempt);
}
