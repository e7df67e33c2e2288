/**
 * Schedules end to end on Redis, across processes: three worker processes upsert the same schedule
 * at boot and run it; each fire time runs exactly once, also through a SIGKILL of one of them and
 * after all of them were killed and restarted (for each catch-up mode).
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Client, silentLogger, type ScheduleDefinition } from '../src/index.js';
import { RedisBroker } from '../brokers/redis.js';
import { RedisBackend } from '../backends/redis.js';
import { redisNamespace } from './helpers/redis.js';
import { killAll, type WorkerProcess } from './helpers/processes.js';

const ns = redisNamespace('e2e-sched');
const fixture = fileURLToPath(new URL('./fixtures/schedule-worker.ts', import.meta.url));
let workers: WorkerProcess[] = [];
let clients: Client[] = [];
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

afterEach(async () => {
  await killAll(workers);
  workers = [];
  await Promise.all(clients.map((c) => c.close()));
  clients = [];
  await ns.sweep();
});
afterAll(async () => {
  await ns.sweep();
  expect(await ns.keys()).toEqual([]);
  await ns.quit();
});

async function start(env: Record<string, string>): Promise<WorkerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', fixture], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  const w: WorkerProcess = { child, exited, output: () => out };
  workers.push(w);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`schedule worker did not start:\n${out}`)), 30_000);
    child.stdout?.on('data', () => {
      if (out.includes('ready\n')) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`schedule worker exited (${code}):\n${out}`));
    });
  });
  return w;
}

function setup(def: ScheduleDefinition): { client: Client; name: string; spawn(): Promise<WorkerProcess>; beats(): Promise<Array<{ at: number; pid: string }>> } {
  const group = `sched-${randomUUID().slice(0, 8)}`;
  const name = `e2e-${randomUUID().slice(0, 8)}`;
  const client = new Client({ broker: new RedisBroker({ prefix: ns.prefix }), backend: new RedisBackend({ prefix: ns.prefix }), logger: silentLogger });
  clients.push(client);
  const env = { TASUKI_PREFIX: ns.prefix, TASUKI_GROUP: group, TASUKI_SCHEDULE: name, TASUKI_SCHEDULE_DEF: JSON.stringify(def) };
  const beats = async (): Promise<Array<{ at: number; pid: string }>> =>
    (await ns.admin.lrange(`${ns.prefix}:beats`, 0, -1)).map((line) => {
      const [id, pid] = line.split('|') as [string, string];
      return { at: Date.parse(id.slice(id.indexOf('@') + 1)), pid };
    });
  return { client, name, spawn: () => start(env), beats };
}

/** Pauses the schedule and waits until every fire it counted has run. */
async function settle(client: Client, name: string, beats: () => Promise<Array<{ at: number }>>): Promise<NonNullable<Awaited<ReturnType<Client['schedules']['get']>>>> {
  await client.schedules.pause(name);
  const end = Date.now() + 20_000;
  for (;;) {
    const info = await client.schedules.get(name);
    if (info !== null && info.fires === new Set((await beats()).map((b) => b.at)).size) return info;
    if (Date.now() > end) throw new Error('fires did not settle');
    await sleep(100);
  }
}

describe('schedules across processes (Redis)', () => {
  it('3 processes upsert and run one everyMs 1000 schedule for 30 s, one of them SIGKILLed: each second fires exactly once', async () => {
    const { client, name, spawn, beats } = setup({ everyMs: 1000 });
    await Promise.all([spawn(), spawn(), spawn()]);
    await sleep(15_000);
    const victim = workers[0] as WorkerProcess;
    victim.child.kill('SIGKILL');
    await victim.exited;
    await sleep(15_000);
    const info = await settle(client, name, beats);
    const list = await beats();
    // A fire runs twice only when the process running it was killed before its success was stored (at-least-once).
    const victimPid = String(victim.child.pid);
    const survivors = list.filter((b) => b.pid !== victimPid).map((b) => b.at);
    expect(new Set(survivors).size).toBe(survivors.length);
    const times = [...new Set(list.map((b) => b.at))].sort((a, b) => a - b);
    expect(times.length).toBeGreaterThanOrEqual(24);
    for (let i = 1; i < times.length; i++) expect((times[i] as number) - (times[i - 1] as number)).toBe(1000);
    expect(info.fires).toBe(times.length);
    expect(info.missed).toBe(0);
    expect(new Set(list.map((b) => b.pid)).size).toBeGreaterThan(1);
  }, 120_000);

  it.each([
    ['none', 'none'],
    ['latest', 'latest'],
    ['window 2.5 s', { windowMs: 2500 }],
  ] as const)('catch-up %s after every process was SIGKILLed for 5 s', async (_label, catchup) => {
    const grace = 500;
    const { client, name, spawn, beats } = setup({ everyMs: 1000, graceMs: grace, catchup });
    await Promise.all([spawn(), spawn(), spawn()]);
    const end = Date.now() + 20_000;
    while ((await beats()).length < 3 && Date.now() < end) await sleep(100);
    // A fire whose handler ran at the kill may run again after the restart (at-least-once): only fires
    // due after the kill must be unique.
    const killedAt = Date.now();
    await killAll(workers);
    await sleep(5000);
    const restart = Date.now();
    await Promise.all([spawn(), spawn(), spawn()]);
    // The first tick after the restart runs between `restart` and (about) `booted`: processes take a while to boot.
    const booted = Date.now();
    while (Math.max(...(await beats()).map((b) => b.at)) < booted + 2000 && Date.now() < booted + 20_000) await sleep(100);
    const info = await settle(client, name, beats);
    const all = (await beats()).map((b) => b.at);
    const times = [...new Set(all)];
    const afterKill = all.filter((t) => t > killedAt);
    expect(new Set(afterKill).size).toBe(afterKill.length);
    for (const t of times) expect(all.filter((x) => x === t).length).toBeLessThanOrEqual(t > killedAt ? 1 : 2);
    expect(info.fires).toBe(times.length);
    const down = (upTo: number): number[] => times.filter((t) => t > killedAt && t <= upTo);
    if (catchup === 'none') {
      expect(down(restart - grace)).toEqual([]);
      expect(info.missed).toBeGreaterThanOrEqual(3);
    } else if (catchup === 'latest') {
      expect(down(restart - grace).length).toBeLessThanOrEqual(1);
      expect(down(booted).length).toBeGreaterThanOrEqual(1);
      expect(info.missed).toBeGreaterThanOrEqual(2);
    } else {
      expect(down(booted).length).toBeGreaterThanOrEqual(1);
      expect(down(booted).every((t) => t >= restart - 2500)).toBe(true);
      expect(info.missed).toBeGreaterThanOrEqual(1);
    }
    // Fires go on after the restart, one per second.
    expect(times.filter((t) => t > booted + 1000).length).toBeGreaterThanOrEqual(1);
  });
});
