/**
 * Argument checking at run time: decodes a message's argument array and checks it against what the
 * handler declared (its arity, or the `args` option of its registration).
 */
import { BadArgumentsError, toError } from './errors.js';
import { decodeValue, type EncodedValue } from './message.js';
import type { ArgSpec } from './task.js';
import type { Registration } from './worker-context.js';

/** Decodes the argument document of a message and checks it; throws {@link BadArgumentsError}. */
export function decodeArgs(reg: Registration, encoded: EncodedValue): unknown[] {
  let decoded: unknown;
  try {
    decoded = decodeValue(encoded);
  } catch (err) {
    throw new BadArgumentsError(`arguments cannot be decoded: ${toError(err).message}`);
  }
  if (!Array.isArray(decoded)) throw new BadArgumentsError('arguments are not an array');
  return checkArgs(reg, decoded);
}

/** Checks arguments against a registration; returns the (possibly transformed) arguments. */
export function checkArgs(reg: Registration, args: unknown[]): unknown[] {
  const spec: ArgSpec | undefined = reg.options.args;
  const declared = Math.max(0, reg.fn.length - (reg.options.ctl ? 1 : 0));
  if (spec === undefined) {
    if (args.length < declared) {
      const hint = reg.options.ctl ? '' : ' (a handler whose first parameter is the TaskCtl must be registered with { ctl: true })';
      throw new BadArgumentsError(`task "${reg.name}" expects at least ${declared} argument(s), got ${args.length}${hint}`);
    }
    return args;
  }
  if (typeof spec === 'function') {
    try {
      const out = spec(args);
      return Array.isArray(out) ? out : args;
    } catch (err) {
      throw new BadArgumentsError(`task "${reg.name}" arguments rejected: ${toError(err).message}`);
    }
  }
  if (args.length > spec.length || args.length < spec.filter((t) => !t.endsWith('?')).length) {
    throw new BadArgumentsError(`task "${reg.name}" expects ${spec.length} argument(s), got ${args.length}`);
  }
  spec.forEach((t, i) => {
    const optional = t.endsWith('?');
    const type = optional ? t.slice(0, -1) : t;
    const v = args[i];
    if (optional && v === undefined) return;
    if (!matches(type, v)) {
      throw new BadArgumentsError(`task "${reg.name}" argument ${i + 1} must be ${type}, got ${typeName(v)}`);
    }
  });
  return args;
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (v instanceof Date) return 'date';
  if (v instanceof Map) return 'map';
  if (v instanceof Set) return 'set';
  return typeof v;
}

function matches(type: string, v: unknown): boolean {
  switch (type) {
    case 'any':
      return true;
    case 'object':
      return typeName(v) === 'object';
    case 'number':
      return typeof v === 'number' && !Number.isNaN(v);
    default:
      return typeName(v) === type;
  }
}
