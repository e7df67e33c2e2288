/** Validation of group and task names, shared by the core and the brokers. */
import { InvalidNameError } from './errors.js';

/** Allowed characters and length of group and task names. */
export const NAME_PATTERN = /^[A-Za-z0-9_.:-]{1,128}$/;

/**
 * Checks a group or task name: 1 to 128 characters of `A-Z a-z 0-9 _ . : -`. Such names are safe as
 * Redis key parts, RabbitMQ queue names and log fields. Throws {@link InvalidNameError}.
 */
export function assertName(kind: 'group' | 'task', name: unknown): asserts name is string {
  if (typeof name !== 'string') throw new InvalidNameError(`${kind} name must be a string, got ${typeof name}`);
  if (!NAME_PATTERN.test(name)) {
    throw new InvalidNameError(
      `invalid ${kind} name ${JSON.stringify(name)}: use 1 to 128 characters of A-Z a-z 0-9 _ . : -`,
    );
  }
}
