/**
 * Delivering built messages (the client's send path after validation): publish to the broker and
 * record the `sent` state, each step bounded by the send's `sendTimeoutMs`; explicit ids go through
 * the crash-safe idempotent send (`idempotent.ts`). Sends inside a transaction are `tx-send.ts`'s.
 */
import type { Backend, Expiry, WriteOutcome } from './backend.js';
import type { Broker } from './broker.js';
import type { ClientBounds } from './client-options.js';
import { beforeDeadline } from './deadline.js';
import { ConnectionError, InvalidOptionError } from './errors.js';
import { sendIdempotent } from './idempotent.js';
import type { Logger } from './logger.js';
import { encodeMessage, type TaskMessage } from './message.js';
import { publishOptionsOf, sentState } from './outgoing.js';
import type { TaskId } from './task.js';

/** What delivering needs from its client. */
export interface DeliverContext {
  broker: Broker;
  backend: Backend;
  logger: Logger;
  statusExpires: Expiry;
  bounds: ClientBounds;
}

/** Swallows a settled value or error. */
const ignore = (): void => undefined;

/** Bounds a send step by the send's deadline (ConnectionError after it). */
function bounded<T>(ctx: DeliverContext, work: Promise<T>, deadline: number): Promise<T> {
  return beforeDeadline(
    work,
    deadline,
    () => new ConnectionError(`send: the broker/backend did not confirm within sendTimeoutMs (${ctx.bounds.sendTimeoutMs} ms); the message may still arrive`),
  );
}

/** Writes the `sent` state of a new message (guard `absent`); `null` when states are not stored. */
function recordSent(ctx: DeliverContext, msg: TaskMessage): Promise<WriteOutcome> | null {
  if (ctx.statusExpires === 0) return null;
  return ctx.backend.write({ state: sentState(msg), stateTtl: ctx.statusExpires, previous: 'refused', guard: 'absent' });
}

/** Publishes the messages of a `sendMany` and records their `sent` states. */
export async function publishMany(ctx: DeliverContext, group: string, msgs: TaskMessage[], now: number): Promise<void> {
  const deadline = now + ctx.bounds.sendTimeoutMs;
  await bounded(ctx, ctx.broker.connect(), deadline);
  await bounded(
    ctx,
    Promise.all([
      ctx.broker.publishBatch(
        group,
        msgs.map((m) => ({ body: encodeMessage(m), options: publishOptionsOf(m) })),
      ),
      ...msgs.map((m) => recordSent(ctx, m)),
    ]),
    deadline,
  );
}

/** Publishes one built message and records its `sent` state (idempotently with an explicit id). */
export async function deliver(ctx: DeliverContext, msg: TaskMessage, explicitId: boolean): Promise<TaskId> {
  const { group, id } = msg;
  const body = encodeMessage(msg);
  const deadline = msg.sentAt + ctx.bounds.sendTimeoutMs;
  const publishOptions = publishOptionsOf(msg);
  if (explicitId) {
    if (ctx.statusExpires === 0) {
      throw new InvalidOptionError('an explicit id (idempotency key) needs stored states: statusExpires must not be 0');
    }
    const step = <T>(work: Promise<T>): Promise<T> => bounded(ctx, work, Date.now() + ctx.bounds.sendTimeoutMs);
    return sendIdempotent(
      {
        backend: ctx.backend,
        logger: ctx.logger,
        statusExpires: ctx.statusExpires,
        claimTakeoverMs: ctx.bounds.claimTakeoverMs,
        claim: (m) => step(recordSent(ctx, m) as Promise<WriteOutcome>),
        // Each publish attempt (first sender or taker) has its own sendTimeoutMs.
        publish: () => step(ctx.broker.publish(group, body, publishOptions)),
        bound: step,
      },
      msg,
    );
  }
  // A fresh id cannot collide: record `sent` and publish concurrently. The `absent` guard keeps a
  // worker's `running` (if it got there first) from being overwritten. Both are waited for, under
  // one deadline (one timer per send); the send fails only when the publish failed (the state write
  // is best effort: the worker writes the next state anyway).
  const publish = ctx.broker.publish(group, body, publishOptions);
  const record = recordSent(ctx, msg);
  // Handled now: it may reject while the publish is still pending (an unhandled rejection otherwise).
  record?.catch(ignore);
  let published = false;
  let failure: { reason: unknown } | undefined;
  const settled = publish
    .then(
      () => {
        published = true;
        return record;
      },
      (reason: unknown) => {
        failure = { reason };
        // The state is deleted only once its write has landed (or failed): see below.
        return record;
      },
    )
    .then(ignore, ignore);
  try {
    await bounded(ctx, settled, deadline);
  } catch (timeout) {
    // Past the deadline: a publish still unconfirmed fails the send (a late state write is not waited for).
    if (!published && failure === undefined) failure = { reason: timeout };
  }
  if (failure !== undefined) {
    await ctx.backend.delete(id).catch(ignore);
    throw failure.reason;
  }
  return id as TaskId;
}
