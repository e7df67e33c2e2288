/**
 * The instrumentation seam: hook order (send, process, run around the handler, ran, settled, end),
 * several instrumentations nested in order, and hooks that throw are logged and skipped (the task
 * still runs and its result is stored).
 */
import { describe, expect, it } from 'vitest';
import { Server, type Instrumentation, type Logger, type LogFields } from '../src/index.js';

/** A logger that keeps error lines. */
function recording(): { logger: Logger; errors: Array<{ msg: string; fields?: LogFields }> } {
  const errors: Array<{ msg: string; fields?: LogFields }> = [];
  const none = (): void => undefined;
  return { errors, logger: { debug: none, info: none, warn: none, error: (msg, fields) => errors.push(fields === undefined ? { msg } : { msg, fields }) } };
}

describe('instrumentation seam', () => {
  it('calls the hooks in order; the handler runs inside every run hook, the first one outermost', async () => {
    const log: string[] = [];
    const make = (tag: string): Instrumentation => ({
      server: () => log.push(`${tag} server`),
      send: (msg) => {
        log.push(`${tag} send ${msg.name}`);
        return (error) => log.push(`${tag} sent ${error === undefined ? 'ok' : 'error'}`);
      },
      process: (msg) => {
        log.push(`${tag} process ${msg.name}`);
        return {
          run: (fn) => {
            log.push(`${tag} run in`);
            const out = fn();
            log.push(`${tag} run out`);
            return out;
          },
          ran: (error) => log.push(`${tag} ran ${error === undefined ? 'ok' : error.message}`),
          settled: (how) => log.push(`${tag} settled ${how}`),
          end: () => log.push(`${tag} end`),
        };
      },
    });
    const { logger } = recording();
    const server = new Server({ logger, instrumentation: [make('A'), make('B')] });
    const t = server.add('seam', 't', () => {
      log.push('handler');
      return 1;
    });
    await server.run('seam', 1);
    const client = server.client();
    expect((await client.getResult(await client.send(t), 10_000)).value).toBe(1);
    await server.shutdown(5000);
    // A send settles when the broker confirmed: the worker may have started the task by then.
    expect(log.filter((l) => l.includes(' sent '))).toEqual(['A sent ok', 'B sent ok']);
    expect(log.filter((l) => !l.includes(' sent '))).toEqual([
      'A server', 'B server',
      'A send t', 'B send t',
      'A process t', 'B process t',
      'A run in', 'B run in', 'handler', 'B run out', 'A run out',
      'A ran ok', 'B ran ok',
      'A settled ack', 'B settled ack',
      'A end', 'B end',
    ]);
  });

  it('hooks that throw are logged and skipped: the task runs and succeeds', async () => {
    const boom = (): never => {
      throw new Error('hook failure');
    };
    const throwing: Instrumentation = {
      server: boom,
      send: () => boom,
      process: () => ({ run: boom, ran: boom, settled: boom, end: boom }),
    };
    let ranInside = 0;
    const counting: Instrumentation = { process: () => ({ run: (fn) => (ranInside++, fn()) }) };
    const { logger, errors } = recording();
    const server = new Server({ logger, instrumentation: [throwing, counting] });
    const t = server.add('seam2', 't', (x: number) => x + 1);
    await server.run('seam2', 1);
    const client = server.client();
    expect((await client.getResult(await client.send(t, 1), 10_000)).value).toBe(2);
    await server.shutdown(5000);
    // The handler ran once, inside the hook that did not throw.
    expect(ranInside).toBe(1);
    const hooks = errors.filter((e) => e.msg === 'an instrumentation hook threw').map((e) => e.fields?.hook);
    expect(hooks).toEqual(expect.arrayContaining(['server', 'send done', 'run', 'ran', 'settled', 'end']));
  });

  it('a process hook that throws leaves the run without its scope', async () => {
    const { logger, errors } = recording();
    const server = new Server({
      logger,
      instrumentation: {
        process: () => {
          throw new Error('no scope');
        },
      },
    });
    const t = server.add('seam3', 't', () => 'ok');
    await server.run('seam3', 1);
    const client = server.client();
    expect((await client.getResult(await client.send(t), 10_000)).value).toBe('ok');
    await server.shutdown(5000);
    expect(errors.map((e) => e.fields?.hook)).toEqual(['process']);
  });
});
