import { afterEach, describe, expect, it } from 'vitest';
import { Server } from '../src/server.js';
import { opsContract } from './contract/ops.js';
import { MemoryBackend, MemoryBackendStore } from '../backends/memory.js';
import { MemoryBroker, MemoryBrokerStore } from '../brokers/memory.js';
import { silentLogger } from '../src/logger.js';
import type { AbnormalTask } from '../src/ops/types.js';

opsContract('memory', () => {
  const store = new MemoryBackendStore();
  return { create: () => new MemoryBackend({ store }) };
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function until(check: () => Promise<boolean> | boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(20);
  }
}

describe('operations API on the memory pair', () => {
  const servers: Server[] = [];
  const make = (stores: { broker: MemoryBrokerStore; backend: MemoryBackendStore }, extra: ConstructorParameters<typeof Server>[0] = {}): Server => {
    const s = new Server({ broker: new MemoryBroker({ store: stores.broker }), backend: new MemoryBackend({ store: stores.backend }), logger: silentLogger, pausePollMs: 50, heartbeatMs: 50, ...extra });
    servers.push(s);
    return s;
  };
  const stores = () => ({ broker: new MemoryBrokerStore(), backend: new MemoryBackendStore() });
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.shutdown(1000)));
  });

  it('counts and lists failed tasks, retries one with its stored message, and it then succeeds', async () => {
    const server = make(stores());
    let calls = 0;
    const flaky = server.add('ops', 'flaky', (n: number) => {
      calls++;
      if (calls === 1) throw new Error(`boom ${n}`);
      return n * 2;
    });
    await server.run('ops', 2);
    const client = server.client();
    const id = await client.with({ retryCount: 0 }).send(flaky, 21);
    const first = await client.getResult(id, 5000);
    expect(first.status).toBe('failure');
    const page = await client.ops.list('ops', { status: 'failure', since: Date.now() - 60_000 });
    expect(page.items.map((s) => s.id)).toEqual([id]);
    expect(page.items[0]?.error?.message).toBe('boom 21');
    const counts = await client.ops.counts('ops');
    expect(counts).toMatchObject({ group: 'ops', ready: 0, paused: false, redelivered: 0 });
    expect(counts.statuses?.failure).toBe(1);
    expect(await client.ops.groups()).toContain('ops');
    const report = await client.ops.retry([id, 'no-such-id']);
    expect(report.retried).toEqual([id]);
    expect(report.skipped).toEqual([{ id: 'no-such-id', reason: expect.stringContaining('not found') }]);
    await until(async () => (await client.getStatus(id))?.status === 'success');
    expect((await client.getResult<number>(id, 1000)).value).toBe(42);
    expect((await client.ops.retry(id)).skipped[0]?.reason).toBe('it succeeded');
  });

  it('pause holds new tasks (running ones finish), visible in counts; resume runs them; nothing is lost', async () => {
    const server = make(stores());
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const slow = server.add('pz', 'slow', async () => {
      await gate;
      return 'slow';
    });
    const quick = server.add('pz', 'quick', (n: number) => n);
    await server.run('pz', 4);
    const client = server.client();
    const running = await client.send(slow);
    await until(async () => (await client.getStatus(running))?.status === 'running');
    await client.ops.pause('pz');
    expect(await client.ops.paused()).toEqual(['pz']);
    await sleep(200); // past pausePollMs: the worker has seen the pause
    const held = await Promise.all([1, 2, 3].map((n) => client.send(quick, n)));
    release();
    expect((await client.getResult(running, 5000)).value).toBe('slow');
    await sleep(400);
    for (const id of held) expect((await client.getStatus(id))?.status).toBe('sent');
    expect((await client.ops.counts('pz')).paused).toBe(true);
    expect((await client.ops.workers())[0]?.groups[0]).toMatchObject({ group: 'pz', paused: true });
    await client.ops.resume('pz');
    for (const [i, id] of held.entries()) expect((await client.getResult(id, 5000)).value).toBe(i + 1);
    expect((await client.ops.counts('pz')).paused).toBe(false);
  });

  it('the registry shows a pause and a resume within the pause poll, not only at the next heartbeat', async () => {
    const server = make(stores(), { heartbeatMs: 600_000 });
    server.add('pr', 'ok', () => 1);
    await server.run('pr', 1);
    const client = server.client();
    await until(async () => (await client.ops.workers()).length === 1);
    expect((await client.ops.workers())[0]?.groups[0]).toMatchObject({ group: 'pr', paused: false });
    await client.ops.pause('pr');
    await until(async () => (await client.ops.workers())[0]?.groups[0]?.paused === true, 5000);
    await client.ops.resume('pr');
    await until(async () => (await client.ops.workers())[0]?.groups[0]?.paused === false, 5000);
  });

  it('the worker registry lists a running server with its groups and counters; shutdown removes it', async () => {
    const st = stores();
    const server = make(st);
    server.add('reg', 'ok', () => 1);
    await server.run('reg', 3);
    const client = server.client();
    await client.getResult(await client.send('reg', 'ok'), 5000);
    await until(async () => (await client.ops.workers())[0]?.succeeded === 1);
    const [w] = await client.ops.workers();
    expect(w).toMatchObject({ pid: process.pid, groups: [{ group: 'reg', concurrency: 3, running: 0, paused: false }], succeeded: 1, failed: 0, version: '0.1.0' });
    const other = make(st);
    await server.shutdown(1000);
    expect(await other.client().ops.workers()).toEqual([]);
  });

  it('watchdog: reports a task not started in time and one running too long, once per interval however many servers watch', async () => {
    const st = stores();
    const events: Array<{ group: string; tasks: AbnormalTask[] }> = [];
    const watchdog = { sentTimeoutMs: 100, runningTimeoutMs: 100, intervalMs: 300 };
    const a = make(st, { watchdog });
    const b = make(st, { watchdog });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    for (const s of [a, b]) {
      s.add('wd', 'hang', () => gate);
      s.on('abnormal', (e) => events.push(e));
    }
    await Promise.all([a.run('wd', 1), b.run('wd', 1)]);
    const client = a.client();
    const hung = await client.send('wd', 'hang');
    await until(async () => (await client.getStatus(hung))?.status === 'running');
    await client.ops.pause('wd');
    await sleep(150);
    const waiting = await client.send('wd', 'hang');
    await until(() => events.some((e) => e.tasks.some((t) => t.state.id === waiting)), 5000);
    await sleep(1000);
    release();
    const kinds = new Map(events.flatMap((e) => e.tasks.map((t) => [t.state.id, t.kind] as const)));
    expect(kinds.get(hung)).toBe('running-too-long');
    expect(kinds.get(waiting)).toBe('not-started');
    for (const e of events) expect(new Set(e.tasks.map((t) => t.state.id)).size).toBe(e.tasks.length);
    // Every event is one (group, interval): never two in one interval, though two servers watch.
    const buckets = events.map((e) => Math.floor((e as unknown as { at: number }).at / 300));
    expect(new Set(buckets).size).toBe(buckets.length);
    await client.ops.resume('wd');
  });
});
