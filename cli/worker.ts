/**
 * `tasuki worker <module>`: loads a module that registers handlers on a server and runs its groups.
 * The module exports `default` (or `register`): a function receiving the `Server` (it may be async).
 * A `.ts` module is loaded through tsx when it is installed. SIGINT / SIGTERM: graceful shutdown
 * (running tasks finish within `--grace`); a second signal stops at once and hands the running
 * tasks back to the broker.
 */
import { Server } from '../src/server.js';
import { consoleLogger } from '../src/logger.js';
import type { Connection } from './connect.js';
import { importModule } from './connect.js';
import { parseDuration, UsageError, type Output } from './format.js';

/** Flags of `tasuki worker`. */
export interface WorkerFlags {
  group: string[];
  concurrency: string;
  grace: string;
  log?: boolean;
}

/** Runs the worker until a signal stops it; resolves once it is shut down. */
export async function runWorker(conn: Connection, out: Output, modulePath: string, f: WorkerFlags): Promise<void> {
  if (f.group.length === 0) throw new UsageError('give at least one --group');
  const concurrency = Number(f.concurrency);
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new UsageError('--concurrency must be a whole number ≥ 1');
  const graceMs = parseDuration(f.grace, '--grace');
  const mod = await importModule(modulePath);
  const register = (typeof mod.default === 'function' ? mod.default : mod.register) as ((s: Server) => unknown) | undefined;
  if (typeof register !== 'function') throw new UsageError(`${modulePath} must export a function (default or \`register\`) that receives the server and adds handlers`);
  const server = new Server({ logger: consoleLogger('warn'), ...conn.server, broker: conn.broker, backend: conn.backend });
  await register(server);
  const say = (text: string, fields: Record<string, unknown> = {}): void => out.line(out.json ? JSON.stringify({ event: text, ...fields, at: Date.now() }) : text);
  if (f.log === true) {
    server.on('succeeded', (e) => say(`${out.paint('green', 'ok')}      ${e.group}/${e.name} ${e.id} ${e.durationMs}ms`, { kind: 'succeeded', ...e }));
    server.on('failed', (e) => say(`${out.paint('red', 'failed')}  ${e.group}/${e.name} ${e.id} ${e.error.message}`, { kind: 'failed', id: e.id, error: e.error.message }));
    server.on('retrying', (e) => say(`${out.paint('yellow', 'retry')}   ${e.group}/${e.name} ${e.id} in ${e.delayMs}ms: ${e.error.message}`, { kind: 'retrying', id: e.id }));
  }
  server.on('abnormal', (e) => say(`${out.paint('yellow', 'abnormal')} ${e.group}: ${e.tasks.map((t) => `${t.state.id} (${t.kind})`).join(', ')}`, { kind: 'abnormal', group: e.group, tasks: e.tasks.map((t) => ({ id: t.state.id, kind: t.kind })) }));
  let signals = 0;
  let stopped!: () => void;
  const done = new Promise<void>((r) => (stopped = r));
  const onSignal = (sig: NodeJS.Signals): void => {
    signals++;
    if (signals === 1) {
      say(`${sig}: stopping — letting ${server.running} running task(s) finish (up to ${f.grace}); send it again to stop now`, { kind: 'stopping', running: server.running });
      void server.shutdown(graceMs).then(stopped, stopped);
    } else {
      say(`${sig}: stopping now — handing ${server.running} running task(s) back to the broker`, { kind: 'stopping-now', handedBack: server.running });
      void server.shutdown(0);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    for (const g of f.group) await server.run(g, concurrency);
    say(`worker running ${f.group.map((g) => `${g} (concurrency ${concurrency})`).join(', ')} on ${conn.source}; Ctrl-C to stop`, { kind: 'started', groups: f.group, concurrency, pid: process.pid });
    await done;
    say('stopped', { kind: 'stopped' });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
