/** Small helpers shared by the parts of the RabbitMQ broker. */
import type { Channel, Message } from 'amqplib';
import { InvalidOptionError } from '../../src/errors.js';
import { acksOf } from './acks.js';

/** Broker name used in errors. */
export const NAME = 'RabbitMQ broker';

/** Does nothing (for ignored promise rejections and events). */
export const noop = (): void => undefined;

/** The message of an error, for error texts. */
export function errText(err: unknown): string {
  return err instanceof Error ? err.message : err === undefined ? 'no error recorded' : String(err);
}

/** Resolves after `ms` (at least 0). */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

/** A header of a message as a string (RabbitMQ may hand strings back as buffers). */
export function headerString(msg: Message, name: string): string | undefined {
  const headers = msg.properties.headers as Record<string, unknown> | undefined;
  const v = headers?.[name];
  if (typeof v === 'string') return v;
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  if (typeof v === 'number') return String(v);
  return undefined;
}

/** Validates an integer option, or returns `fallback` when it is absent. */
export function positiveInt(name: string, value: number | undefined, fallback: number, min = 1, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new InvalidOptionError(`${name} must be an integer from ${min} to ${max}, got ${String(value)}`);
  }
  return value;
}

/**
 * Acks unless the channel is gone (then RabbitMQ has requeued the message already); on a consumer
 * channel with a tracker (`acks.ts`) the ack is sent at the end of the tick, batched.
 */
export function ackSafe(ch: Channel, msg: Message): void {
  const acks = acksOf(ch);
  if (acks) return acks.ack(msg);
  try {
    ch.ack(msg);
  } catch {
    // channel closed
  }
}

/** Nacks with requeue unless the channel is gone. */
export function nackSafe(ch: Channel, msg: Message): void {
  const acks = acksOf(ch);
  if (acks) return acks.nack(msg);
  try {
    ch.nack(msg, false, true);
  } catch {
    // channel closed
  }
}

/** The AMQP priority property of a consumed message, to carry it on when the message is published again. */
export function priorityOf(msg: { properties: { priority?: unknown } }): number | undefined {
  const p = msg.properties.priority;
  return typeof p === 'number' ? p : undefined;
}
