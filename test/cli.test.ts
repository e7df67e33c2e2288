/**
 * The `tasuki` command, spawned for real (through tsx on the source: no build needed) against the
 * shared Redis (and RabbitMQ for `status`), checking output and exit codes.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { spawn } from 'node:child_process';
import { redisNamespace } from './helpers/redis.js';
import { CLI, TSX, root, runCli, startCliWorker, until, type CliWorker, type Run } from './helpers/cli.js';

const ns = redisNamespace('cli');
const REDIS = ['--redis', 'redis://127.0.0.1:6379', '--prefix', ns.prefix];
const group = `cli-${randomUUID().slice(0, 8)}`;
const env = { ...process.env, CLI_GROUP: group, NO_COLOR: '1', TASUKI_QUIET: '1' };

function run(args: string[], extraEnv: Record<string, string> = {}): Promise<Run> {
  return runCli(args, { ...env, ...extraEnv });
}

/** Starts `tasuki worker` and resolves once it says it runs. */
function startWorker(args: string[]): Promise<CliWorker> {
  return startCliWorker([...REDIS, 'worker', 'test/fixtures/cli-tasks.ts', '--group', group, ...args], env);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The RabbitMQ case's prefix: RabbitMQ names take at most 40 characters of it (its keys are swept too). */
const AMQP_PREFIX = ns.prefix.slice(0, 40);

afterAll(async () => {
  await ns.sweep();
  let cursor = '0';
  do {
    const [next, keys] = await ns.admin.scan(cursor, 'MATCH', `${AMQP_PREFIX}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await ns.admin.del(...keys);
  } while (cursor !== '0');
  await ns.quit();
});

describe('tasuki command', () => {
  it('usage errors exit 2 with one line; --help exits 0; a missing connection is named', async () => {
    const help = await run(['ls', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: tasuki ls [options] <group>');
    const bad = await run(['frobnicate']);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    const none = await run(['status'], { TASUKI_REDIS: '' });
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/^tasuki: ERR_INVALID_OPTION: (no connection|not a connection URL)/);
    const purge = await run([...REDIS, 'purge', group]);
    expect(purge.code).toBe(2);
    expect(purge.stderr).toContain('--yes');
  }, 60_000);

  it('a wrong password is reported in one line without the credential or a stack', async () => {
    const r = await run(['--redis', 'redis://user:s3cret-pw@127.0.0.1:1/0', 'status']);
    expect(r.code).toBe(1);
    expect(r.stderr).not.toContain('s3cret-pw');
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  }, 60_000);

  it('a worker started by the CLI: send --wait, status, ls --status failed, inspect, retry, dlq redrive, pause/resume, workers, SIGINT with tasks in flight', async () => {
    const w = await startWorker(['--concurrency', '4']);
    try {
      const sent = await run([...REDIS, 'send', group, 'add', '2', '3', '--wait', '30s']);
      expect(sent.stdout).toMatch(/ success 5\n$/);
      expect(sent.code).toBe(0);
      const failed = await run([...REDIS, 'send', group, 'boom', '"bad input"', '--retries', '0', '--wait', '30s']);
      expect(failed.code).toBe(1);
      const failedId = failed.stdout.split(' ')[0] as string;
      expect(failed.stdout).toContain('failure boom: bad input');

      const ls = await run([...REDIS, 'ls', group, '--status', 'failed', '--since', '1h']);
      expect(ls.code).toBe(0);
      expect(ls.stdout).toMatch(/^ID\s+NAME\s+STATUS\s+TRIES\s+UPDATED\s+ERROR\n/);
      expect(ls.stdout).toContain(failedId);
      expect(ls.stdout).toContain('Error: boom: bad input');
      const lsJson = JSON.parse((await run([...REDIS, '--json', 'ls', group, '--status', 'failure'])).stdout) as { items: Array<{ id: string }> };
      expect(lsJson.items.map((s) => s.id)).toEqual([failedId]);

      const insp = await run([...REDIS, 'inspect', failedId]);
      expect(insp.code).toBe(0);
      expect(insp.stdout).toMatch(/status\s+failure/);
      expect(insp.stdout).toMatch(/error\s+Error: boom: bad input/);
      expect(insp.stdout).toContain('stack');
      const missing = await run([...REDIS, 'inspect', 'no-such-task']);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toContain('not found');

      // A failure that is dead-lettered (missing arguments), then redriven.
      const dead = await run([...REDIS, 'send', group, 'add']);
      const deadId = dead.stdout.trim();
      await until(async () => (await run([...REDIS, 'dlq', 'ls', group])).stdout.includes(deadId));
      const status = await run([...REDIS, 'status', group]);
      expect(status.code).toBe(0);
      expect(status.stdout).toMatch(new RegExp(`^GROUP\\s+READY\\s+DELAYED\\s+IN-FLIGHT\\s+RUNNING\\s+FAILED\\s+DEAD`));
      expect(status.stdout).toMatch(new RegExp(`${group}\\s+0\\s+0\\s+0\\s+0\\s+2\\s+1\\s`));
      expect(status.stdout).toMatch(/WORKER\s+PID\s+GROUPS/);
      const redrive = await run([...REDIS, 'dlq', 'redrive', group, '--all']);
      expect(redrive.stdout).toContain('1 dead letter(s) moved back');
      await until(async () => (await run([...REDIS, 'dlq', 'ls', group])).stdout.includes(deadId));

      const retried = await run([...REDIS, 'retry', failedId]);
      expect(retried.stdout).toContain(`${failedId} sent again`);
      await until(async () => (await run([...REDIS, '--json', 'inspect', failedId])).stdout.includes('"status":"failure"') && (await run([...REDIS, '--json', 'inspect', failedId])).stdout.includes('"retriesUsed":0'));

      // Pause: a task sent meanwhile stays queued; resume runs it.
      expect((await run([...REDIS, 'pause', group])).code).toBe(0);
      await sleep(1500);
      const held = (await run([...REDIS, 'send', group, 'add', '20', '22'])).stdout.trim();
      await sleep(1500);
      expect(JSON.parse((await run([...REDIS, '--json', 'inspect', held])).stdout).state.status).toBe('sent');
      expect((await run([...REDIS, 'status', group])).stdout).toMatch(/paused/);
      expect((await run([...REDIS, 'resume', group])).code).toBe(0);
      await until(async () => JSON.parse((await run([...REDIS, '--json', 'inspect', held])).stdout).state.status === 'success');

      const workers = await run([...REDIS, '--json', 'workers']);
      const list = JSON.parse(workers.stdout) as Array<{ pid: number; groups: Array<{ group: string }> }>;
      expect(list.some((x) => x.groups.some((g) => g.group === group))).toBe(true);

      // SIGINT while tasks run: they finish, nothing is lost, the worker leaves the registry.
      const slow = await Promise.all([1, 2, 3].map(() => run([...REDIS, 'send', group, 'sleep', '8000'])));
      const ids = slow.map((r) => r.stdout.trim());
      await until(async () => JSON.parse((await run([...REDIS, '--json', 'inspect', ids[0] as string])).stdout).state.status === 'running');
      w.child.kill('SIGINT');
      expect(await w.exited).toBe(0);
      expect(w.output()).toContain('stopping');
      // The grace (30 s) outlasts them: each finished before the worker exited.
      for (const id of ids) expect(JSON.parse((await run([...REDIS, '--json', 'inspect', id])).stdout).state.status).toBe('success');
      const after = JSON.parse((await run([...REDIS, '--json', 'workers'])).stdout) as Array<{ groups: Array<{ group: string }> }>;
      expect(after.some((x) => x.groups.some((g) => g.group === group))).toBe(false);
    } finally {
      w.child.kill('SIGKILL');
      await run([...REDIS, 'purge', group, '--yes']);
    }
  }, 240_000);

  it('a second SIGINT stops the worker at once and hands the running task back (it reads sent again)', async () => {
    const w = await startWorker(['--concurrency', '2']);
    const id = (await run([...REDIS, 'send', group, 'sleep', '120000'])).stdout.trim();
    try {
      await until(async () => JSON.parse((await run([...REDIS, '--json', 'inspect', id])).stdout).state.status === 'running');
      w.child.kill('SIGINT');
      await until(async () => w.output().includes('stopping'));
      w.child.kill('SIGINT');
      expect(await w.exited).toBe(0);
      expect(w.output()).toContain('stopping now — handing 1 running task(s) back to the broker');
      expect(JSON.parse((await run([...REDIS, '--json', 'inspect', id])).stdout).state.status).toBe('sent');
      expect(JSON.parse((await run([...REDIS, '--json', 'status', group])).stdout).groups[0].ready).toBe(1);
    } finally {
      w.child.kill('SIGKILL');
      await run([...REDIS, 'purge', group, '--yes']);
    }
  }, 120_000);

  it('watch --json prints a status per interval until SIGINT, then exits 0', async () => {
    const child = spawn(TSX, [CLI, ...REDIS, '--json', 'watch', group, '--interval', '300ms'], { cwd: root, env });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
    await until(async () => stdout.split('\n').filter(Boolean).length >= 2);
    child.kill('SIGINT');
    expect(await exited).toBe(0);
    const lines = stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { groups: Array<{ group: string }> });
    expect(lines[0]?.groups[0]?.group).toBe(group);
  }, 60_000);

  it('a backend without a task index (Memcache) refuses ls with ERR_UNSUPPORTED, exit 1', async () => {
    const r = await run([...REDIS, '--backend', 'memcache://127.0.0.1:11211', 'ls', group]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^tasuki: ERR_UNSUPPORTED: listing tasks needs a task index, which the memcache backend does not keep/);
  }, 60_000);

  it('status on RabbitMQ (with the Redis backend) shows the depth of a queued task', async () => {
    const amqp = ['--amqp', 'amqp://guest:guest@127.0.0.1:5672', '--backend', 'redis://127.0.0.1:6379', '--prefix', AMQP_PREFIX];
    const g = `${group}-amqp`;
    const sent = await run([...amqp, 'send', g, 'add', '1', '2']);
    expect(sent.code).toBe(0);
    const status = await run([...amqp, '--json', 'status', g]);
    expect(status.code).toBe(0);
    const s = JSON.parse(status.stdout) as { groups: Array<{ group: string; ready: number; statuses: { sent: number } }> };
    expect(s.groups[0]).toMatchObject({ group: g, ready: 1 });
    expect(s.groups[0]?.statuses.sent).toBe(1);
    expect((await run([...amqp, 'purge', g, '--yes'])).code).toBe(0);
  }, 60_000);
});
