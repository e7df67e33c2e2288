/**
 * The `tasuki` command on PostgreSQL (broker and backend from a config module, one schema dropped
 * afterwards; and the Postgres backend under `--backend postgres://` with the Redis broker),
 * spawned for real through tsx: a worker started by the CLI, send --wait, ls --status failed,
 * status with the statuses, inspect, retry, pause/resume, workers, SIGINT.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { adminPool, dropSchema, PG_URL, schemaName } from './helpers/postgres.js';
import { redisNamespace } from './helpers/redis.js';
import { runCli, startCliWorker, until, type CliWorker, type Run } from './helpers/cli.js';

const schema = schemaName('cli');
const group = `clipg-${randomUUID().slice(0, 8)}`;
const CONFIG = ['--config', 'test/fixtures/cli-postgres-config.ts'];
const env = { ...process.env, CLI_GROUP: group, CLI_SCHEMA: schema, NO_COLOR: '1', TASUKI_QUIET: '1' };
const admin = adminPool();
const ns = redisNamespace('clipg');

/** Prefix of the Redis-broker case: also its backend's schema, so lower case with underscores. */
const mixed = schemaName('clir');

afterAll(async () => {
  await dropSchema(admin, schema);
  await dropSchema(admin, mixed);
  await admin.end();
  let cursor = '0';
  do {
    const [nextCursor, keys] = await ns.admin.scan(cursor, 'MATCH', `${mixed}:*`, 'COUNT', 1000);
    cursor = nextCursor;
    if (keys.length > 0) await ns.admin.del(...keys);
  } while (cursor !== '0');
  await ns.quit();
});

function run(args: string[]): Promise<Run> {
  return runCli(args, env);
}

function startWorker(): Promise<CliWorker> {
  return startCliWorker([...CONFIG, 'worker', 'test/fixtures/cli-tasks.ts', '--group', group, '--concurrency', '2'], env);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const inspect = async (id: string): Promise<{ state: { status: string; retriesUsed: number } }> => JSON.parse((await run([...CONFIG, '--json', 'inspect', id])).stdout);

describe('tasuki command on PostgreSQL', () => {
  it('a worker started by the CLI: send --wait, ls --status failed, status, inspect, retry, pause/resume, workers, SIGINT', async () => {
    const w = await startWorker();
    try {
      const sent = await run([...CONFIG, 'send', group, 'add', '2', '3', '--wait', '30s']);
      expect(sent.stdout).toMatch(/ success 5\n$/);
      const failed = await run([...CONFIG, 'send', group, 'boom', '"bad input"', '--retries', '0', '--wait', '30s']);
      expect(failed.code).toBe(1);
      const failedId = failed.stdout.split(' ')[0] as string;

      const ls = await run([...CONFIG, 'ls', group, '--status', 'failed', '--since', '1h']);
      expect(ls.code).toBe(0);
      expect(ls.stdout).toMatch(/^ID\s+NAME\s+STATUS\s+TRIES\s+UPDATED\s+ERROR\n/);
      expect(ls.stdout).toContain(failedId);
      expect(ls.stdout).toContain('Error: boom: bad input');
      const all = JSON.parse((await run([...CONFIG, '--json', 'ls', group])).stdout) as { items: Array<{ id: string; status: string }> };
      expect(all.items.map((s) => s.status)).toEqual(['failure', 'success']);
      const paged = JSON.parse((await run([...CONFIG, '--json', 'ls', group, '--limit', '1'])).stdout) as { items: Array<{ id: string }>; cursor: string };
      expect(paged.items.map((s) => s.id)).toEqual([failedId]);
      const next = JSON.parse((await run([...CONFIG, '--json', 'ls', group, '--limit', '1', '--cursor', paged.cursor])).stdout) as { items: Array<{ status: string }>; cursor: string | null };
      expect(next.items.map((s) => s.status)).toEqual(['success']);
      expect(next.cursor).toBeNull();

      const status = await run([...CONFIG, 'status', group]);
      expect(status.code).toBe(0);
      expect(status.stdout).toMatch(new RegExp(`${group}\\s+0\\s+0\\s+0\\s+0\\s+1\\s+0\\s`));
      expect(status.stdout).toMatch(/WORKER\s+PID\s+GROUPS/);
      const insp = await run([...CONFIG, 'inspect', failedId]);
      expect(insp.stdout).toMatch(/status\s+failure/);

      expect((await run([...CONFIG, 'retry', failedId])).stdout).toContain(`${failedId} sent again`);
      await until(async () => {
        const s = (await inspect(failedId)).state;
        return s.status === 'failure' && s.retriesUsed === 0;
      });

      expect((await run([...CONFIG, 'pause', group])).code).toBe(0);
      await sleep(1000);
      const held = (await run([...CONFIG, 'send', group, 'add', '20', '22'])).stdout.trim();
      await sleep(1000);
      expect((await inspect(held)).state.status).toBe('sent');
      expect((await run([...CONFIG, 'status', group])).stdout).toMatch(/paused/);
      expect((await run([...CONFIG, 'resume', group])).code).toBe(0);
      await until(async () => (await inspect(held)).state.status === 'success');

      const workers = JSON.parse((await run([...CONFIG, '--json', 'workers'])).stdout) as Array<{ groups: Array<{ group: string }> }>;
      expect(workers.some((x) => x.groups.some((g) => g.group === group))).toBe(true);
      w.child.kill('SIGINT');
      expect(await w.exited).toBe(0);
      const after = JSON.parse((await run([...CONFIG, '--json', 'workers'])).stdout) as Array<{ groups: Array<{ group: string }> }>;
      expect(after.some((x) => x.groups.some((g) => g.group === group))).toBe(false);
    } finally {
      w.child.kill('SIGKILL');
    }
  }, 240_000);

  it('--backend postgres:// with the Redis broker: ls lists what send stored', async () => {
    const flags = ['--redis', 'redis://127.0.0.1:6379', '--backend', PG_URL, '--prefix', mixed];
    const g = `${group}-r`;
    const id = (await run([...flags, 'send', g, 'add', '1', '2'])).stdout.trim();
    const ls = JSON.parse((await run([...flags, '--json', 'ls', g, '--status', 'sent'])).stdout) as { items: Array<{ id: string }> };
    expect(ls.items.map((s) => s.id)).toEqual([id]);
    expect((await run([...flags, 'purge', g, '--yes'])).code).toBe(0);
  }, 60_000);
});
