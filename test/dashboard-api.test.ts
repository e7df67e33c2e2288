/**
 * The dashboard's JSON API without a browser, on the memory pair: counts and rates, lists paged
 * at 10 000 tasks, id search and time range, task detail (error, arguments, cut values, flow and
 * workflow steps), send, retry, abort, purge, dead letters, the abnormal check; and the words
 * shown where Memcache cannot list.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import type { Server } from '../src/server.js';
import { task } from '../src/index.js';
import { Client } from '../src/client.js';
import { silentLogger } from '../src/logger.js';
import { MemoryBroker } from '../brokers/memory.js';
import { MemcacheBackend } from '../backends/memcache.js';
import { TOKEN, auditLogger, bearer, closeAll, post, serve, shopServer } from './helpers/dashboard-http.js';
import { dashboard, type WireOverview, type WireTask, type WireTaskPage } from '../dashboard/index.js';

const logger = auditLogger;
let server: Server;
let client: Client;
let base: string;

beforeAll(async () => {
  server = await shopServer();
  client = server.client();
  base = await serve(dashboard({ client, auth: { token: TOKEN }, logger }));
});

afterAll(async () => {
  await closeAll();
  await server.shutdown(1000);
});

describe('dashboard API on the memory pair', () => {
  it('API: counts, a failed task by id search, its detail with error and arguments, retry; values stay data', async () => {
    const failed = await client.with({ retryCount: 0 }).send('shop', 'boom', '<script>alert(1)</script>');
    expect((await client.getResult(failed, 10_000)).status).toBe('failure');
    const ok = await client.send('shop', 'echo', { big: 'x'.repeat(50_000) });
    expect((await client.getResult(ok, 10_000)).status).toBe('success');

    const ov = (await (await fetch(`${base}/api/overview`, { headers: bearer })).json()) as WireOverview;
    const shop = ov.groups.find((g) => g.group === 'shop');
    expect(shop?.statuses?.failure).toBe(1);
    expect(shop?.rates?.failure.reduce((a, b) => a + b, 0)).toBe(1);
    expect(ov.workers?.some((w) => w.groups.some((g) => g.group === 'shop'))).toBe(true);
    expect(ov.notes).toEqual([]);

    const found = (await (await fetch(`${base}/api/tasks?group=shop&q=${failed.slice(0, 6)}`, { headers: bearer })).json()) as WireTaskPage;
    expect(found.items.map((t) => t.id)).toEqual([failed]);
    expect(found.items[0]?.error).toContain('boom: <script>');
    const detail = (await (await fetch(`${base}/api/task?id=${failed}`, { headers: bearer })).json()) as WireTask;
    expect(detail.state?.error?.message).toBe('boom: <script>alert(1)</script>');
    expect(detail.state?.error?.stack).toContain('boom');
    expect(JSON.parse(detail.args?.text ?? 'null')).toEqual(['<script>alert(1)</script>']);
    expect(detail.retryable).toBe(true);
    expect(detail.timeline.map((e) => e.what)).toContain('finished: failure');

    const big = (await (await fetch(`${base}/api/task?id=${ok}`, { headers: bearer })).json()) as WireTask;
    expect(big.value?.truncated).toBe(true);
    expect(big.value?.size).toBeGreaterThan(50_000);
    const all = (await (await fetch(`${base}/api/task?id=${ok}&full=1`, { headers: bearer })).json()) as WireTask;
    expect(all.value?.truncated).toBe(false);
    expect(JSON.parse(all.value?.text ?? '{}')).toEqual({ big: 'x'.repeat(50_000) });

    const retried = await post(base, 'api/retry', { ids: [failed, ok] });
    expect(retried.status).toBe(200);
    const report = (await retried.json()) as { message: string; detail: { retried: string[] } };
    expect(report.detail.retried).toEqual([failed]);
    expect(report.message).toContain('it succeeded');
    const missing = (await (await fetch(`${base}/api/task?id=no-such-task`, { headers: bearer })).json()) as WireTask;
    expect(missing.found).toBe(false);
  });

  it('time range, abort, the abnormal check, dead letters (one, selected, all; redrive and delete), flow and workflow steps', async () => {
    const before = Date.now();
    const recent = await client.send('shop', 'add', 1, 1);
    await client.getResult(recent, 10_000);
    const ranged = async (q: string): Promise<string[]> => ((await (await fetch(`${base}/api/tasks?group=shop&${q}`, { headers: bearer })).json()) as WireTaskPage).items.map((t) => t.id);
    expect(await ranged(`since=${before}`)).toContain(recent);
    expect(await ranged(`until=${before}`)).not.toContain(recent);
    expect(await ranged(`since=${before}&name=boom`)).toEqual([]);

    const waiting = await client.send('shop', 'wait');
    await new Promise<void>((r) => {
      const t = setInterval(() => void client.getStatus(waiting).then((x) => x?.status === 'running' && (clearInterval(t), r())), 20);
    });
    const abnormal = (await (await fetch(`${base}/api/abnormal?group=shop&runningTimeoutMs=0`, { headers: bearer })).json()) as { items: Array<{ kind: string; task: { id: string } }> };
    expect(abnormal.items).toContainEqual({ kind: 'running-too-long', task: expect.objectContaining({ id: waiting }) });
    const calm = (await (await fetch(`${base}/api/abnormal?group=shop`, { headers: bearer })).json()) as { items: unknown[] };
    expect(calm.items).toEqual([]);
    const aborted = await post(base, 'api/abort', { id: waiting });
    expect(((await aborted.json()) as { message: string }).message).toBe(`${waiting} aborted`);
    expect((await client.getResult(waiting, 10_000)).status).toBe('aborted');

    // Three dead letters (missing arguments): one redriven by id, one deleted by id, the rest deleted with all.
    const dead = await Promise.all([1, 2, 3].map(() => client.send('shop', 'add')));
    const list = async (): Promise<Array<{ id: string; task?: string }>> => ((await (await fetch(`${base}/api/dead?group=shop`, { headers: bearer })).json()) as { items: Array<{ id: string; task?: string }> }).items;
    const end = Date.now() + 10_000;
    while ((await list()).length < 3 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    const rows = await list();
    expect(rows.map((r) => r.task).sort()).toEqual([...dead].sort());
    expect(((await (await post(base, 'api/dead/delete', { group: 'shop', ids: [rows[0]?.id] })).json()) as { message: string }).message).toBe('1 dead letter(s) deleted from shop');
    expect((await post(base, 'api/dead/delete', { group: 'shop', ids: [rows[1]?.id], all: true })).status).toBe(400);
    expect(((await (await post(base, 'api/dead/redrive', { group: 'shop', ids: [rows[1]?.id] })).json()) as { message: string }).message).toBe('1 dead letter(s) moved back to shop');
    const end2 = Date.now() + 10_000;
    while ((await list()).length < 2 && Date.now() < end2) await new Promise((r) => setTimeout(r, 20));
    expect(((await (await post(base, 'api/dead/delete', { group: 'shop', all: true })).json()) as { message: string }).message).toBe('2 dead letter(s) deleted from shop');
    expect(await list()).toEqual([]);

    const addRef = server.add('shop', 'add2', (a: number, b: number) => a + b);
    const flowRef = server.flow('flows', 'twoSteps', async (flow, n: number) => {
      const doubled = await flow.step('double', () => n * 2);
      return flow.call('add', addRef, doubled, 1);
    });
    await server.run('flows', 2);
    const flowId = await client.send(flowRef, 5);
    expect((await client.getResult(flowId, 10_000)).value).toBe(11);
    const fl = (await (await fetch(`${base}/api/task?id=${flowId}`, { headers: bearer })).json()) as WireTask;
    expect(fl.steps?.kind).toBe('flow');
    expect(fl.steps?.items.map((s) => [s.name, s.kind, s.status])).toEqual([
      ['double', 'step', 'done'],
      ['add', 'call', 'success'],
    ]);
    const child = fl.steps?.items[1]?.id as string;
    expect(((await (await fetch(`${base}/api/task?id=${encodeURIComponent(child)}`, { headers: bearer })).json()) as WireTask).state?.name).toBe('add2');

    const chain = await client.chain(task(server.add('shop', 'inc', (n: number) => n + 1), 1), task(server.add('shop', 'dbl', (n: number) => n * 2)));
    expect((await client.getResult(chain, 10_000)).value).toBe(4);
    const wf = (await (await fetch(`${base}/api/task?id=${chain}`, { headers: bearer })).json()) as WireTask;
    expect(wf.steps?.kind).toBe('workflow');
    expect(wf.steps?.items.map((s) => [s.key, s.name, s.status])).toEqual([
      ['0', 'shop.inc', 'success'],
      ['1', 'shop.dbl', 'success'],
    ]);
  });

  it('shows 200 groups at most, says so, and adds a group asked for by name', async () => {
    await Promise.all(Array.from({ length: 201 }, (_, i) => client.send(`many-${String(i).padStart(3, '0')}`, 'noop')));
    const ov = (await (await fetch(`${base}/api/overview?group=many-200`, { headers: bearer })).json()) as WireOverview;
    expect(ov.notes.join(' ')).toMatch(/^\d+ groups are known; the first 200 are shown/);
    expect(ov.groups.length).toBe(201);
    expect(ov.groups.some((g) => g.group === 'many-200')).toBe(true);
    await Promise.all(Array.from({ length: 201 }, (_, i) => client.ops.purge(`many-${String(i).padStart(3, '0')}`)));
  });

  it('pages a group of 10 000 tasks on the server, and an id search scans a bounded part', async () => {
    const group = 'big';
    const ids: string[] = [];
    for (let i = 0; i < 10_000; i += 500) ids.push(...(await Promise.all(Array.from({ length: 500 }, () => client.send(group, 'noop')))));
    const first = (await (await fetch(`${base}/api/tasks?group=${group}&limit=50`, { headers: bearer })).json()) as WireTaskPage;
    expect(first.items).toHaveLength(50);
    expect(first.cursor).not.toBeNull();
    const second = (await (await fetch(`${base}/api/tasks?group=${group}&limit=50&cursor=${first.cursor}`, { headers: bearer })).json()) as WireTaskPage;
    expect(second.items).toHaveLength(50);
    expect(second.items.some((t) => first.items.some((f) => f.id === t.id))).toBe(false);
    const target = ids[3] as string;
    const search = (await (await fetch(`${base}/api/tasks?group=${group}&q=${target}`, { headers: bearer })).json()) as WireTaskPage;
    expect(search.items[0]?.id).toBe(target);
    const none = (await (await fetch(`${base}/api/tasks?group=${group}&q=zzzz`, { headers: bearer })).json()) as WireTaskPage;
    expect(none.items).toEqual([]);
    expect(none.scanned).toBe(5000);
    expect(none.cursor).not.toBeNull();
    const rest = (await (await fetch(`${base}/api/tasks?group=${group}&q=zzzz&cursor=${none.cursor}`, { headers: bearer })).json()) as WireTaskPage;
    expect(rest.scanned).toBe(5000);
    expect(rest.cursor).toBeNull();
    await client.ops.purge(group);
  }, 120_000);
});

describe('dashboard on Memcache (no task index, no registry)', () => {
  it('says what it cannot list, and still shows queue depths', async () => {
    const backend = new MemcacheBackend({ servers: '127.0.0.1:11211', prefix: `dash-${randomUUID().slice(0, 8)}` });
    const mc = new Client({ broker: new MemoryBroker(), backend, logger: silentLogger });
    try {
      const url = await serve(dashboard({ client: mc, auth: { token: TOKEN }, logger }));
      await mc.send('mail', 'welcome', 'a@b.c');
      const ov = (await (await fetch(`${url}/api/overview?group=mail`, { headers: bearer })).json()) as WireOverview;
      expect(ov.notes.join(' ')).toMatch(/memcache backend does not keep/);
      expect(ov.notes.join(' ')).toMatch(/no task index/);
      expect(ov.groups).toEqual([expect.objectContaining({ group: 'mail', ready: 1, statuses: null, rates: null })]);
      expect(ov.workers).toBeNull();
      const list = await fetch(`${url}/api/tasks?group=mail`, { headers: bearer });
      expect(list.status).toBe(501);
      expect(((await list.json()) as { error: { code: string; message: string } }).error).toMatchObject({ code: 'ERR_UNSUPPORTED' });
    } finally {
      await mc.close();
    }
  });
});
