import { describe, expect, it } from 'vitest';
import { ConnectionError, InvalidOptionError, UnsupportedError } from '../src/errors.js';
import { errorLine, exitCodeOf, parseDuration, table, UsageError, CommandFailed } from '../cli/format.js';
import { maskUrl, connect } from '../cli/connect.js';
import { parseArgs } from '../cli/actions.js';
import { parseStatus } from '../cli/views.js';

describe('tasuki command helpers', () => {
  it('parses durations and refuses others as usage errors', () => {
    expect(parseDuration('500ms', 'x')).toBe(500);
    expect(parseDuration('30s', 'x')).toBe(30_000);
    expect(parseDuration('1.5m', 'x')).toBe(90_000);
    expect(parseDuration('1h', 'x')).toBe(3_600_000);
    expect(parseDuration('2d', 'x')).toBe(172_800_000);
    expect(parseDuration('250', 'x')).toBe(250);
    expect(() => parseDuration('soon', '--since')).toThrow(UsageError);
  });

  it('aligns tables, right-aligning the number columns', () => {
    expect(table([['A', 'N', 'Z'], ['long', '1', 'x'], ['b', '100', 'y']], new Set([1]))).toBe('A       N  Z\nlong    1  x\nb     100  y');
  });

  it('one error line without credentials; exit code 2 for usage and options, 1 otherwise', () => {
    const e = new ConnectionError('redis backend: connect failed at redis://admin:hunter2@db:6379/0\n    at somewhere');
    expect(errorLine(e)).toBe('ERR_CONNECTION: redis backend: connect failed at redis://admin:***@db:6379/0');
    expect(maskUrl('amqp://guest:guest@127.0.0.1:5672 and mongodb://u:p@h/db')).toBe('amqp://guest:***@127.0.0.1:5672 and mongodb://u:***@h/db');
    expect(exitCodeOf(new UsageError('x'))).toBe(2);
    expect(exitCodeOf(new InvalidOptionError('x'))).toBe(2);
    expect(exitCodeOf(new UnsupportedError('x'))).toBe(1);
    expect(exitCodeOf(new CommandFailed('x'))).toBe(1);
    expect(exitCodeOf(new Error('x'))).toBe(1);
  });

  it('arguments are JSON; statuses accept the usual aliases', () => {
    expect(parseArgs(['1', '"a"', '{"b":[2]}'])).toEqual([1, 'a', { b: [2] }]);
    expect(() => parseArgs(['text'])).toThrow(/argument 1 is not JSON/);
    expect(parseStatus('failed')).toBe('failure');
    expect(parseStatus('running')).toBe('running');
    expect(() => parseStatus('broken')).toThrow(UsageError);
  });

  it('connection: --amqp needs a backend; unknown schemes and a missing connection are refused', async () => {
    await expect(connect({ amqp: 'amqp://127.0.0.1' }, {})).rejects.toThrow(/backend is needed/);
    await expect(connect({ redis: 'http://x' }, {})).rejects.toThrow(/unknown broker scheme http/);
    await expect(connect({ redis: 'redis://127.0.0.1:6379', backend: 'cassandra://x' }, {})).rejects.toThrow(/unknown backend scheme/);
    await expect(connect({}, {})).rejects.toThrow(/no connection/);
  });
});
