/**
 * Options of a client: the common options plus the client's time bounds, with their defaults.
 */
import { InvalidOptionError } from './errors.js';
import { checkMs, type ClientOptions as BaseClientOptions } from './options.js';

/** Default {@link ClientOptions.sendTimeoutMs}. */
export const DEFAULT_SEND_TIMEOUT_MS = 30_000;

/** Default {@link ClientOptions.notFoundAfterMs}. */
export const DEFAULT_NOT_FOUND_AFTER_MS = 2_000;

/** Options of a client (`new Client(...)`): connections, expiries, send defaults and time bounds. */
export interface ClientOptions extends BaseClientOptions {
  /**
   * Longest time in ms a `send`/`sendMany` waits for the backend's `sent` state and the broker's
   * publish confirmation (default 30 000). After it the send rejects with `ConnectionError`
   * (ERR_CONNECTION); the message may still reach the broker later (at-least-once, as any failed send).
   */
  sendTimeoutMs?: number;
  /**
   * Age in ms after which a send with an explicit `id` that finds the id claimed (`sent`) but never
   * confirmed as published takes the claim over and publishes itself: the first sender died between
   * claim and publish (default: twice `sendTimeoutMs`). Must exceed `sendTimeoutMs` plus the clock
   * difference between the sending machines; until then such a send waits for the first one.
   */
  claimTakeoverMs?: number;
  /**
   * When states are stored (`statusExpires` ≠ 0), `getResult` rejects with `NotFoundError`
   * (ERR_NOT_FOUND) once nothing has been stored for the id during this many ms (default 2 000):
   * the id was never sent, or its state expired. `Infinity`: wait the whole timeout.
   */
  notFoundAfterMs?: number;
}

/** Resolved time bounds of a client. */
export interface ClientBounds {
  /** See {@link ClientOptions.sendTimeoutMs}. */
  sendTimeoutMs: number;
  /** See {@link ClientOptions.claimTakeoverMs}. */
  claimTakeoverMs: number;
  /** See {@link ClientOptions.notFoundAfterMs}. */
  notFoundAfterMs: number;
}

/** Resolves the time bounds of a client. */
export function resolveBounds(o: ClientOptions): ClientBounds {
  const sendTimeoutMs = checkMs('sendTimeoutMs', o.sendTimeoutMs ?? DEFAULT_SEND_TIMEOUT_MS, 1);
  const claimTakeoverMs = checkMs('claimTakeoverMs', o.claimTakeoverMs ?? 2 * sendTimeoutMs, 1);
  if (claimTakeoverMs <= sendTimeoutMs) {
    throw new InvalidOptionError(`claimTakeoverMs (${claimTakeoverMs}) must exceed sendTimeoutMs (${sendTimeoutMs})`);
  }
  const notFoundAfterMs = o.notFoundAfterMs === Infinity ? Infinity : checkMs('notFoundAfterMs', o.notFoundAfterMs ?? DEFAULT_NOT_FOUND_AFTER_MS, 0);
  return { sendTimeoutMs, claimTakeoverMs, notFoundAfterMs };
}
