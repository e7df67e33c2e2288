/**
 * Sends inside the caller's database transaction (the `tx` send control, GTA's RunWithTx): the
 * message, and its `sent` state when the backend is transactional too, are written through the
 * caller's open transaction, one after the other, so they exist if and only if it commits. A failure
 * leaves the cleanup to the caller's rollback. Needs a broker that declares `transactional`
 * (PostgreSQL, or the PostgreSQL outbox in front of another broker).
 */
import type { Backend, Expiry, StateWrite, WriteOutcome } from './backend.js';
import type { Broker, PublishOptions } from './broker.js';
import { InvalidOptionError } from './errors.js';
import type { Logger } from './logger.js';
import { encodeMessage, type TaskMessage } from './message.js';
import { publishOptionsOf, sentState } from './outgoing.js';
import type { TaskId } from './task.js';

/** What a transactional send needs from its client. */
export interface TxSendContext {
  broker: Broker;
  backend: Backend;
  logger: Logger;
  statusExpires: Expiry;
}

/**
 * Checks that a `tx` send can be honoured (typed `InvalidOptionError` otherwise); true when the
 * backend writes the `sent` state in the transaction too.
 */
export function checkTx(ctx: TxSendContext, explicitId: boolean): boolean {
  if (ctx.broker.transactional !== true) {
    throw new InvalidOptionError(`the ${ctx.broker.kind} broker cannot send inside a transaction: the tx option needs a transactional broker (PostgreSQL, or the PostgreSQL outbox)`);
  }
  const backendTx = ctx.backend.transactional === true && ctx.statusExpires !== 0;
  if (explicitId && !backendTx) {
    throw new InvalidOptionError('an explicit id with the tx option needs a transactional backend (PostgreSQL) that stores states');
  }
  return backendTx;
}

function publishOptions(msg: TaskMessage, tx: unknown): PublishOptions {
  return { ...publishOptionsOf(msg), tx };
}

function recordSentInTx(ctx: TxSendContext, msg: TaskMessage, tx: unknown): Promise<WriteOutcome> {
  const write: StateWrite = { state: sentState(msg), stateTtl: ctx.statusExpires, previous: 'refused', guard: 'absent', tx };
  return ctx.backend.write(write);
}

/** One send in the caller's transaction; an explicit id already stored there is a duplicate. */
export async function sendInTx(ctx: TxSendContext, msg: TaskMessage, tx: unknown, explicitId: boolean): Promise<TaskId> {
  if (checkTx(ctx, explicitId)) {
    const claim = await recordSentInTx(ctx, msg, tx);
    if (explicitId && !claim.written) {
      ctx.logger.debug('duplicate send ignored', { id: msg.id, status: claim.previous?.status });
      return msg.id as TaskId;
    }
  }
  await ctx.broker.publish(msg.group, encodeMessage(msg), publishOptions(msg, tx));
  return msg.id as TaskId;
}

/** Many sends of one group in the caller's transaction (statements run in order on its connection). */
export async function sendManyInTx(ctx: TxSendContext, group: string, msgs: ReadonlyArray<TaskMessage>, tx: unknown): Promise<void> {
  if (checkTx(ctx, false)) for (const m of msgs) await recordSentInTx(ctx, m, tx);
  await ctx.broker.publishBatch(
    group,
    msgs.map((m) => ({ body: encodeMessage(m), options: publishOptions(m, tx) })),
  );
}
