/**
 * Sends with an explicit id (idempotency key) that survive a crash of the sender.
 *
 * The id is claimed by writing its `sent` state with the `absent` guard; only the sender that created
 * the claim publishes. A claim alone does not prove the message was published (the sender may have
 * died in between, or a delayed task stays `sent` for a long time), so after the broker confirmed the
 * publish the sender also stores a **published marker**: a state under the derived id
 * `"<id> published"` (ids given to `send` cannot contain a space, and workers never read it), with
 * the task's status expiry. A later send of the same id:
 * - finds a state beyond `sent`, or the marker: a duplicate, it resolves with the id and publishes nothing;
 * - finds `sent` without the marker, claimed less than `claimTakeoverMs` ago: the first sender may still
 *   be publishing, so it polls until the marker appears (or the claim is freed after a failed publish,
 *   then it claims the id itself);
 * - finds `sent` without the marker, claimed longer ago: the first sender died (its own publish is
 *   bounded by `sendTimeoutMs`, which must be shorter). It takes the id over — exclusively, through a
 *   short-lived takeover entry `"<id> takeover"` written with the `absent` guard — and publishes.
 * A concurrent double send therefore publishes once; a send repeated after any crash publishes at
 * least once (a duplicate, possible only when a first sender was slow past `claimTakeoverMs`, is
 * skipped by workers once the task's success is stored; before that both copies may run).
 */
import type { Backend, Expiry } from './backend.js';
import { sleep } from './deadline.js';
import type { Logger } from './logger.js';
import { sentState } from './outgoing.js';
import type { TaskMessage } from './message.js';
import type { TaskState } from './state.js';

/** What an idempotent send needs from its client. */
export interface IdempotentSendContext {
  /** Where claims, markers and takeover entries are stored. */
  backend: Backend;
  /** The client's logger. */
  logger: Logger;
  /** The client's status expiry (the marker's too). */
  statusExpires: Expiry;
  /** Claims older than this (ms, by their `updatedAt`) and still unpublished are taken over. */
  claimTakeoverMs: number;
  /** Writes the `sent` claim of `msg` (guard `absent`). */
  claim(msg: TaskMessage): Promise<{ written: boolean; previous: TaskState | null }>;
  /** Publishes the message, bounded by the send's deadline. */
  publish(): Promise<void>;
  /** Bounds one backend call (a hung backend must not hold the send forever). */
  bound<T>(work: Promise<T>): Promise<T>;
}

/** Id of the published marker of task `id` (a space: never part of an explicit id). */
export function publishedMarkerId(id: string): string {
  return `${id} published`;
}

/** Id of the takeover entry of task `id`. */
export function takeoverId(id: string): string {
  return `${id} takeover`;
}

const FIRST_POLL_MS = 10;
const MAX_POLL_MS = 250;

/** Runs an idempotent send of `msg`; resolves once the message is known to be in the broker. */
export async function sendIdempotent(ctx: IdempotentSendContext, msg: TaskMessage): Promise<string> {
  let pollMs = FIRST_POLL_MS;
  for (;;) {
    const claim = await ctx.claim(msg);
    if (claim.written) {
      await publishOrFree(ctx, msg, msg.id);
      return msg.id;
    }
    const current = claim.previous;
    // Refused but nothing reported (an entry that expired in between): claim again.
    if (current !== null) {
      if (current.status !== 'sent' || (await ctx.bound(ctx.backend.read(publishedMarkerId(msg.id)))) !== null) {
        ctx.logger.debug('duplicate send ignored', { id: msg.id, status: current.status });
        return msg.id;
      }
      if (Date.now() - current.updatedAt >= ctx.claimTakeoverMs && (await takeOver(ctx, msg))) return msg.id;
      await sleep(pollMs);
      pollMs = Math.min(MAX_POLL_MS, pollMs * 2);
    }
  }
}

/**
 * Takes over an unpublished claim: true when this sender published it (or found it published),
 * false when another sender holds the takeover (the caller polls for its marker).
 */
async function takeOver(ctx: IdempotentSendContext, msg: TaskMessage): Promise<boolean> {
  const now = Date.now();
  const lock: TaskState = { ...markerState(msg, now), id: takeoverId(msg.id) };
  // Long enough for one publish; a taker that dies frees it by expiry.
  const ttl = Math.max(1, Math.ceil((2 * ctx.claimTakeoverMs) / 1000));
  const taken = await ctx.bound(ctx.backend.write({ state: lock, stateTtl: ttl, previous: 'refused', guard: 'absent' }));
  if (!taken.written) return false;
  // The first sender may have finished between the reads and the takeover.
  if ((await ctx.bound(ctx.backend.read(publishedMarkerId(msg.id)))) === null) {
    ctx.logger.warn('taking over an idempotent send whose sender never confirmed its publish', { id: msg.id });
    await publishOrFree(ctx, msg, takeoverId(msg.id));
  }
  // The marker is stored now: the takeover entry is no longer needed (its expiry would end it anyway).
  await ctx.bound(ctx.backend.delete(takeoverId(msg.id))).catch(() => undefined);
  return true;
}

/** Publishes and stores the marker; on a failed publish deletes `freeId` (the claim or takeover) and rethrows. */
async function publishOrFree(ctx: IdempotentSendContext, msg: TaskMessage, freeId: string): Promise<void> {
  try {
    await ctx.publish();
  } catch (err) {
    // The message is (most likely) not in the broker: free the id so that a retried send can claim it.
    await ctx.bound(ctx.backend.delete(freeId)).catch(() => undefined);
    throw err;
  }
  try {
    await ctx.bound(ctx.backend.write({ state: markerState(msg, Date.now()), stateTtl: ctx.statusExpires, previous: 'refused', guard: 'notSuccess' }));
  } catch (err) {
    // Published: the send succeeded. Without the marker a re-send after claimTakeoverMs publishes a
    // duplicate, which the worker's claim absorbs.
    ctx.logger.warn('idempotent send published, but its published marker could not be stored', { id: msg.id, error: err });
  }
}

function markerState(msg: TaskMessage, now: number): TaskState {
  const { retryAt: _unused, ...sent } = sentState(msg);
  return { ...sent, id: publishedMarkerId(msg.id), updatedAt: now };
}
