/**
 * The watchdog and the worker registry across processes: three `tasuki worker` processes (loaded
 * from a config module) watch one group on Redis; the one running a task is SIGKILLed. The registry
 * drops it, the task is redelivered, and every abnormal task is reported at most once per interval
 * however many processes watch.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomUUID } from 'node:crypto';
import { redisNamespace } from './helpers/redis.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const TSX = join(root, 'node_modules/.bin/tsx');
const CLI = join(root, 'cli/index.ts');
const ns = redisNamespace('cliwd');
const group = `wd-${randomUUID().slice(0, 8)}`;
const env = { ...process.env, CLI_GROUP: group, CLI_PREFIX: ns.prefix, NO_COLOR: '1', TASUKI_QUIET: '1' };
const CONFIG = ['--config', 'test/fixtures/cli-config.ts'];
const INTERVAL = 1000;

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((res, rej) => {
    const child = spawn(TSX, [CLI, ...CONFIG, ...args], { cwd: root, env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', rej);
    child.on('close', (code) => res({ code, stdout, stderr }));
  });
}

interface Abnormal {
  kind: 'abnormal';
  at: number;
  tasks: Array<{ id: string; kind: string }>;
}

function startWorker(events: Abnormal[]): Promise<ChildProcess> {
  const child = spawn(TSX, [CLI, ...CONFIG, '--json', 'worker', 'test/fixtures/cli-tasks.ts', '--group', group, '--concurrency', '2'], { cwd: root, env });
  let buf = '';
  return new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error('worker did not start')), 60_000);
    child.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const e = JSON.parse(line) as { kind: string };
        if (e.kind === 'started') {
          clearTimeout(timer);
          res(child);
        }
        if (e.kind === 'abnormal') events.push(e as Abnormal);
      }
    });
    child.on('close', () => rej(new Error('worker exited')));
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function until(check: () => Promise<boolean> | boolean, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(200);
  }
}
const json = async <T>(args: string[]): Promise<T> => JSON.parse((await run(['--json', ...args])).stdout) as T;

afterAll(async () => {
  await ns.sweep();
  await ns.quit();
});

describe('watchdog and registry across worker processes', () => {
  it('a SIGKILLed worker leaves the registry; its task is redelivered; each abnormal task is reported at most once per interval', async () => {
    const events: Abnormal[] = [];
    const children = await Promise.all([startWorker(events), startWorker(events), startWorker(events)]);
    try {
      await until(async () => (await json<Array<{ groups: Array<{ group: string }> }>>(['workers'])).filter((w) => w.groups[0]?.group === group).length === 3);
      const id = (await run(['send', group, 'sleep', '600000'])).stdout.trim();
      await until(async () => (await json<{ state: { status: string } }>(['inspect', id])).state.status === 'running');
      const ws = await json<Array<{ pid: number; groups: Array<{ group: string; running: number }> }>>(['workers']);
      const busy = ws.find((w) => w.groups[0]?.group === group && (w.groups[0]?.running ?? 0) > 0);
      await until(async () => (await json<Array<{ pid: number; groups: Array<{ running: number }> }>>(['workers'])).some((w) => (w.groups[0]?.running ?? 0) > 0));
      const victim = (busy ?? (await json<Array<{ pid: number; groups: Array<{ running: number }> }>>(['workers'])).find((w) => (w.groups[0]?.running ?? 0) > 0)) as { pid: number };
      process.kill(victim.pid, 'SIGKILL');
      // The registry forgets it within its expiry (3 heartbeats).
      await until(async () => !(await json<Array<{ pid: number }>>(['workers'])).some((w) => w.pid === victim.pid));
      // Redelivered to a surviving worker (lease expiry), then reported once.
      await until(async () => ((await json<{ state: { deliveries?: number; status: string } }>(['inspect', id])).state.deliveries ?? 1) === 2);
      await until(() => events.some((e) => e.tasks.some((t) => t.id === id && t.kind === 'redelivered')));
      // A task that cannot start (group paused) is reported too.
      await run(['pause', group]);
      await sleep(500);
      const waiting = (await run(['send', group, 'add', '1', '2'])).stdout.trim();
      await until(() => events.some((e) => e.tasks.some((t) => t.id === waiting && t.kind === 'not-started')));
      await until(() => events.some((e) => e.tasks.some((t) => t.id === id && t.kind === 'running-too-long')));
      await sleep(3 * INTERVAL);
      const per = new Map<string, number>();
      for (const e of events) for (const t of e.tasks) {
        const key = `${t.id}/${t.kind}/${Math.floor(e.at / INTERVAL)}`;
        per.set(key, (per.get(key) ?? 0) + 1);
      }
      expect([...per.values()].every((n) => n === 1)).toBe(true);
      expect(events.filter((e) => e.tasks.some((t) => t.id === id && t.kind === 'redelivered'))).toHaveLength(1);
      // The watchdog's view on demand, from the CLI.
      const view = await run(['abnormal', group, '--sent-timeout', '500ms', '--running-timeout', '4s']);
      expect(view.stdout).toMatch(new RegExp(`not-started\\s+${waiting}`));
      expect(view.stdout).toMatch(new RegExp(`running-too-long\\s+${id}`));
      await run(['resume', group]);
      await run(['abort', id]);
    } finally {
      for (const c of children) c.kill('SIGTERM');
      await sleep(1000);
      for (const w of await json<Array<{ pid: number; groups: Array<{ group: string }> }>>(['workers']).catch(() => [])) {
        if (w.groups[0]?.group === group) process.kill(w.pid, 'SIGKILL');
      }
      await run(['purge', group, '--yes']);
    }
  }, 240_000);
});
