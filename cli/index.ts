#!/usr/bin/env node
/**
 * The `tasuki` command: see and steer a live system (status, ls, inspect, send, abort, retry, dlq,
 * pause, resume, purge, workers, watch, abnormal) and run workers (`tasuki worker`). Exit codes:
 * 0 ok, 1 failure, 2 usage. Errors are one line, without stack or credentials. `--json` on every
 * command prints machine-readable output.
 */
import { Command, CommanderError, Option } from 'commander';
import { Client } from '../src/client.js';
import { silentLogger } from '../src/logger.js';
import { TASUKI_VERSION } from '../src/version.js';
import { pause } from '../src/timers.js';
import { abort, dlqList, dlqMove, dlqShow, pauseResume, purge, retry, send, type SendFlags } from './actions.js';
import { connect, type Connection, type ConnectionFlags } from './connect.js';
import { CommandFailed, errorLine, exitCodeOf, parseDuration, stdoutOutput, type Output } from './format.js';
import { abnormal, collectStatus, inspect, ls, renderStatus, workers, type LsFlags } from './views.js';
import { runWorker, type WorkerFlags } from './worker.js';
import { dashboardCommand } from './dashboard.js';

interface GlobalFlags extends ConnectionFlags {
  json?: boolean;
  color?: boolean;
}

type Body = (client: Client, out: Output, conn: Connection) => Promise<void>;

/** Connects, runs `body` with a client, closes; errors go to {@link fail}. */
async function withClient(cmd: Command, body: Body): Promise<void> {
  const g = cmd.optsWithGlobals<GlobalFlags>();
  const out = stdoutOutput(g.json === true, g.color !== false);
  const conn = await connect(g);
  const client = new Client({ broker: conn.broker, backend: conn.backend, logger: silentLogger });
  try {
    await body(client, out, conn);
  } finally {
    await client.close().catch(() => undefined);
  }
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

function build(): Command {
  const program = new Command('tasuki')
    .description('See and steer a tasuki system: queues, tasks, dead letters, workers.')
    .version(TASUKI_VERSION)
    .option('--redis <url>', 'Redis broker and backend (env TASUKI_REDIS)')
    .option('--amqp <url>', 'RabbitMQ broker (env TASUKI_AMQP); needs --backend or --redis')
    .option('--backend <url>', 'backend URL: redis://, mongodb://, memcache://, postgres:// (env TASUKI_BACKEND)')
    .option('--prefix <prefix>', 'key/queue prefix (env TASUKI_PREFIX; default tasuki)')
    .option('--config <file>', 'config module exporting { broker, backend } (env TASUKI_CONFIG; default ./tasuki.config.js|.mjs|.ts)')
    .option('--json', 'machine-readable output')
    .option('--no-color', 'no colours (they are only used on a terminal anyway)')
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({ writeErr: (s) => void process.stderr.write(s.startsWith('error:') ? `tasuki: ${s.slice(7).trimStart()}` : s) });

  program
    .command('status')
    .description('groups with queue depths, task counts, rates over the last minute, and workers')
    .argument('[groups...]', 'groups (default: every known group)')
    .action((groups: string[], _o: unknown, cmd: Command) =>
      withClient(cmd, async (client, out, conn) => {
        const s = await collectStatus(client, groups, conn.backend.index !== undefined, conn.backend.records !== undefined);
        out.line(out.json ? JSON.stringify(s) : renderStatus(out, s));
      }),
    );

  program
    .command('watch')
    .description('the status view, refreshed in place until Ctrl-C')
    .argument('[groups...]', 'groups (default: every known group)')
    .option('--interval <duration>', 'refresh interval', '2s')
    .action((groups: string[], o: { interval: string }, cmd: Command) =>
      withClient(cmd, async (client, out, conn) => {
        const every = parseDuration(o.interval, '--interval');
        const stop = new AbortController();
        const onSig = (): void => stop.abort();
        process.once('SIGINT', onSig);
        process.once('SIGTERM', onSig);
        try {
          while (!stop.signal.aborted) {
            const s = await collectStatus(client, groups, conn.backend.index !== undefined, conn.backend.records !== undefined);
            if (out.json) out.line(JSON.stringify({ at: Date.now(), ...s }));
            else {
              if (out.tty) process.stdout.write('\x1b[H\x1b[2J');
              out.line(`${out.paint('grey', new Date().toISOString())}  every ${o.interval}, Ctrl-C to stop`);
              out.line(renderStatus(out, s));
              if (!out.tty) out.line();
            }
            await pause(every, stop.signal);
          }
        } finally {
          process.off('SIGINT', onSig);
          process.off('SIGTERM', onSig);
        }
      }),
    );

  program
    .command('ls')
    .description("a group's tasks, newest first (needs a backend with a task index)")
    .argument('<group>')
    .option('-s, --status <status>', 'sent, running, waiting-retry, success, failure (failed), expired, aborted')
    .option('-n, --name <task>', 'only this task name')
    .option('--since <duration>', 'updated within this long (e.g. 1h)')
    .option('--until <duration>', 'updated more than this long ago')
    .option('--limit <n>', 'page size (default 20)')
    .option('--cursor <cursor>', 'next page (printed after a full page)')
    .action((group: string, o: LsFlags, cmd: Command) => withClient(cmd, (client, out) => ls(client, out, group, o)));

  program
    .command('inspect')
    .description('everything stored about a task: state, value, error with stack, progress, timeline, redeliveries')
    .argument('<id>')
    .action((id: string, _o: unknown, cmd: Command) => withClient(cmd, (client, out) => inspect(client, out, id)));

  program
    .command('send')
    .description('send a task; each argument is JSON (1, \'"text"\', \'{"a":1}\')')
    .argument('<group>')
    .argument('<name>')
    .argument('[args...]')
    .option('--wait [duration]', 'wait for the result (default up to 60s); exit 1 when it did not succeed')
    .option('--run-after <duration>', 'run no earlier than this from now')
    .option('--retries <n>', 'retries after a failure (default 3)')
    .option('--id <id>', 'explicit id (idempotency key)')
    .option('--timeout <duration>', 'handler timeout')
    .action((group: string, name: string, args: string[], o: SendFlags, cmd: Command) => withClient(cmd, (client, out) => send(client, out, group, name, args, o)));

  program
    .command('abort')
    .description('abort a task (before it starts, or signal it while it runs)')
    .argument('<id>')
    .action((id: string, _o: unknown, cmd: Command) => withClient(cmd, (client, out) => abort(client, out, id)));

  program
    .command('retry')
    .description('run finished (failed, expired, aborted) tasks again with their stored message')
    .argument('<ids...>')
    .action((ids: string[], _o: unknown, cmd: Command) => withClient(cmd, (client, out) => retry(client, out, ids)));

  const dlq = program.command('dlq').description('dead letters of a group');
  dlq
    .command('ls')
    .argument('<group>')
    .option('--limit <n>', 'how many (default 50)')
    .option('--offset <n>', 'skip this many')
    .description('list dead letters, oldest first')
    .action((group: string, o: { limit?: string; offset?: string }, cmd: Command) => withClient(cmd, (client, out) => dlqList(client, out, group, o)));
  dlq
    .command('show')
    .argument('<group>')
    .argument('<id>', 'dead letter id or task id')
    .description('one dead letter with its body')
    .action((group: string, id: string, _o: unknown, cmd: Command) => withClient(cmd, (client, out) => dlqShow(client, out, group, id)));
  dlq
    .command('redrive')
    .argument('<group>')
    .argument('[ids...]')
    .option('--all', 'every dead letter of the group')
    .description('move dead letters back to their queue')
    .action((group: string, ids: string[], o: { all?: boolean }, cmd: Command) => withClient(cmd, (client, out) => dlqMove(client, out, 'redrive', group, ids, o.all === true)));
  dlq
    .command('rm')
    .argument('<group>')
    .argument('[ids...]')
    .option('--all', 'every dead letter of the group')
    .description('delete dead letters')
    .action((group: string, ids: string[], o: { all?: boolean }, cmd: Command) => withClient(cmd, (client, out) => dlqMove(client, out, 'rm', group, ids, o.all === true)));

  for (const what of ['pause', 'resume'] as const) {
    program
      .command(what)
      .argument('<group>')
      .description(what === 'pause' ? 'pause a group: workers start no new task of it within about a second; running ones finish' : 'resume a paused group')
      .action((group: string, _o: unknown, cmd: Command) => withClient(cmd, (client, out) => pauseResume(client, out, what, group)));
  }

  program
    .command('purge')
    .argument('<group>')
    .option('--yes', 'really delete')
    .description('delete every ready, delayed and dead message of a group (task states stay)')
    .action((group: string, o: { yes?: boolean }, cmd: Command) => withClient(cmd, (client, out) => purge(client, out, group, o.yes === true)));

  program
    .command('workers')
    .description('live workers: host, pid, groups, running, counters, last heartbeat')
    .action((_o: unknown, cmd: Command) => withClient(cmd, (client, out) => workers(client, out)));

  program
    .command('abnormal')
    .argument('<group>')
    .option('--sent-timeout <duration>', 'not started this long after due', '5m')
    .option('--running-timeout <duration>', 'running longer than this', '30m')
    .option('--within <duration>', 'redelivered runs started within this long', '10m')
    .description("the watchdog's check on demand: tasks not started in time, running too long, redelivered")
    .action((group: string, o: { sentTimeout: string; runningTimeout: string; within: string }, cmd: Command) =>
      withClient(cmd, (client, out, conn) => abnormal(client, out, group, o, conn.backend)),
    );

  program
    .command('worker')
    .argument('<module>', 'module whose default export (or `register`) receives the server and adds handlers; .ts needs tsx')
    .addOption(new Option('-g, --group <group>', 'group to run (repeatable)').argParser(collect).default([]))
    .option('-c, --concurrency <n>', 'handlers at once per group', '1')
    .option('--grace <duration>', 'how long running tasks may finish after the first signal', '30s')
    .option('--log', 'print a line per finished task')
    .description('run handlers; SIGINT/SIGTERM stops gracefully, a second signal at once (running tasks handed back)')
    .action(async (modulePath: string, o: WorkerFlags, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalFlags>();
      const out = stdoutOutput(g.json === true, g.color !== false);
      process.env.TASUKI_CLI_WORKER = '1';
      const conn = await connect(g);
      try {
        await runWorker(conn, out, modulePath, o);
      } catch (err) {
        await Promise.all([conn.broker.close().catch(() => undefined), conn.backend.close().catch(() => undefined)]);
        throw err;
      }
    });
  program.addCommand(dashboardCommand().copyInheritedSettings(program));
  return program;
}

/** Runs the command line; resolves with the exit code. */
export async function main(argv: string[]): Promise<number> {
  const program = build();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    process.stderr.write(`tasuki: ${errorLine(err)}\n`);
    return exitCodeOf(err);
  }
}

process.exitCode = await main(process.argv.slice(2));
