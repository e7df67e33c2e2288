/**
 * The dashboard's request handler without a browser: credentials (token, login cookie, basic auth,
 * loopback-only `none`), cross-site checks of actions, read-only mode, mounting under a path, the
 * audit log, the JSON API on the memory pair (lists paged at 10 000 tasks, id search, detail with
 * error, arguments and cut values), and the words shown where Memcache cannot list.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { Server } from '../src/server.js';
import { task } from '../src/index.js';
import type { TaskCtl } from '../src/ctl.js';
import { Client } from '../src/client.js';
import { silentLogger, type Logger } from '../src/logger.js';
import { MemoryBroker } from '../brokers/memory.js';
import { MemcacheBackend } from '../backends/memcache.js';
import { dashboard, type DashboardHandler, type DashboardOptions, type WireOverview, type WireTask, type WireTaskPage } from '../dashboard/index.js';

const TOKEN = 'a-long-test-token-0123456789';
const lines: Array<{ message: string; fields: Record<string, unknown> | undefined }> = [];
const logger: Logger = { ...silentLogger, info: (message, fields) => void lines.push({ message, fields }), warn: (message, fields) => void lines.push({ message, fields }) };

let server: Server;
let client: Client;
const http: HttpServer[] = [];

async function serve(handler: DashboardHandler, host = '127.0.0.1'): Promise<string> {
  const s = createServer((req, res) => handler(req, res));
  http.push(s);
  await new Promise<void>((r) => s.listen(0, host, r));
  return `http://${host}:${(s.address() as AddressInfo).port}`;
}

const bearer = { authorization: `Bearer ${TOKEN}` };
const action = { ...bearer, 'content-type': 'application/json', 'x-tasuki-dashboard': '1' };

function post(base: string, path: string, body: unknown, headers: Record<string, string> = action): Promise<Response> {
  return fetch(`${base}/${path}`, { method: 'POST', headers, body: JSON.stringify(body) });
}

let base: string;
let readOnly: string;

beforeAll(async () => {
  server = new Server({ logger: silentLogger });
  server.add('shop', 'add', (a: number, b: number) => a + b);
  server.add('shop', 'echo', (v: unknown) => v);
  server.add('shop', 'boom', (why: string) => {
    throw new Error(`boom: ${why}`);
  });
  server.add('shop', 'wait', (ctl: TaskCtl) => new Promise((_r, reject) => ctl.signal.addEventListener('abort', () => reject(ctl.signal.reason as Error))), { ctl: true });
  await server.run('shop', 4);
  client = server.client();
  base = await serve(dashboard({ client, auth: { token: TOKEN }, logger }));
  readOnly = await serve(dashboard({ client, auth: { token: TOKEN }, logger, readOnly: true }));
});

afterAll(async () => {
  await Promise.all(http.map((s) => new Promise((r) => s.close(r))));
  await server.shutdown(1000);
});

describe('dashboard options', () => {
  it('refuses missing, ambiguous and weak credentials', () => {
    const bad: unknown[] = [{ client }, { client, auth: {} }, { client, auth: { token: 'short' } }, { client, auth: { token: TOKEN, none: true } }, { client, auth: { basic: { username: 'a', password: 'pw' } } }, { client, auth: { none: false } }];
    for (const o of bad) expect(() => dashboard(o as DashboardOptions)).toThrow(/auth|token|password|none/);
  });
});

describe('dashboard with a token', () => {
  it('refuses every page, file, read and action without the credential (style.css and the login form excepted)', async () => {
    for (const path of ['', 'app.js', 'api/info', 'api/overview', 'api/tasks?group=shop', 'api/task?id=x', 'api/dead?group=shop']) {
      const r = await fetch(`${base}/${path}`);
      expect(r.status, path).toBe(401);
      const text = await r.text();
      expect(text, path).not.toContain('shop"');
    }
    const wrong = await fetch(`${base}/api/overview`, { headers: { authorization: 'Bearer not-the-token-at-all' } });
    expect(wrong.status).toBe(401);
    for (const name of ['pause', 'resume', 'retry', 'abort', 'dead/redrive', 'dead/delete', 'purge']) {
      const r = await post(base, `api/${name}`, { group: 'shop', ids: ['x'], id: 'x', confirm: 'shop' }, { 'content-type': 'application/json', 'x-tasuki-dashboard': '1' });
      expect(r.status, name).toBe(401);
    }
    expect(await client.ops.paused()).toEqual([]);
    expect((await fetch(`${base}/style.css`)).status).toBe(200);
    expect((await fetch(`${base}/login`)).status).toBe(200);
  });

  it('answers with the bearer token, and through the login form cookie', async () => {
    const page = await fetch(`${base}/`, { headers: bearer });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toMatch(/script-src 'self'.*frame-ancestors 'none'/);
    const info = (await (await fetch(`${base}/api/info`, { headers: bearer })).json()) as { readOnly: boolean; auth: string };
    expect(info).toMatchObject({ readOnly: false, auth: 'token' });
    const form = (token: string): Promise<Response> =>
      fetch(`${base}/login`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: base }, body: new URLSearchParams({ token }).toString() });
    const refused = await form('not-the-right-token-0000');
    expect(refused.status).toBe(401);
    expect(refused.headers.get('set-cookie')).toBeNull();
    const ok = await form(TOKEN);
    expect(ok.status).toBe(303);
    const cookie = ok.headers.get('set-cookie') ?? '';
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    const session = cookie.split(';')[0] as string;
    expect((await fetch(`${base}/api/info`, { headers: { cookie: session } })).status).toBe(200);
    expect((await fetch(`${base}/api/info`, { headers: { cookie: 'tasuki_dashboard=forged' } })).status).toBe(401);
    const out = await fetch(`${base}/logout`, { method: 'POST', redirect: 'manual', headers: { cookie: session, origin: base } });
    expect(out.status).toBe(303);
    expect(out.headers.get('set-cookie')).toMatch(/^tasuki_dashboard=; .*Max-Age=0/);
    const crossSiteLogin = await fetch(`${base}/login`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'https://evil.example' }, body: `token=${TOKEN}` });
    expect(crossSiteLogin.status).toBe(403);
  });

  it('refuses actions that may come from another site, and logs who did what', async () => {
    const noHeader = await post(base, 'api/pause', { group: 'shop' }, { ...bearer, 'content-type': 'application/json' });
    expect(noHeader.status).toBe(403);
    expect(((await noHeader.json()) as { error: { code: string } }).error.code).toBe('ERR_DASHBOARD_CSRF');
    expect((await post(base, 'api/pause', { group: 'shop' }, { ...action, origin: 'https://evil.example' })).status).toBe(403);
    expect((await post(base, 'api/pause', { group: 'shop' }, { ...action, 'sec-fetch-site': 'cross-site' })).status).toBe(403);
    expect((await post(base, 'api/pause', { group: 'shop' }, { ...action, 'content-type': 'text/plain' })).status).toBe(415);
    expect((await fetch(`${base}/api/pause?group=shop`, { headers: bearer })).status).toBe(404);
    expect(await client.ops.paused()).toEqual([]);
    expect(lines.some((l) => l.message === 'dashboard action refused' && l.fields?.action === 'pause')).toBe(true);

    lines.length = 0;
    const ok = await post(base, 'api/pause', { group: 'shop' }, { ...action, origin: base, 'sec-fetch-site': 'same-origin' });
    expect(ok.status).toBe(200);
    expect(await client.ops.paused()).toEqual(['shop']);
    expect((await post(base, 'api/resume', { group: 'shop' })).status).toBe(200);
    expect(await client.ops.paused()).toEqual([]);
    const audited = lines.filter((l) => l.message === 'dashboard action');
    expect(audited.map((l) => [l.fields?.action, l.fields?.group])).toEqual([
      ['pause', 'shop'],
      ['resume', 'shop'],
    ]);
    expect(String(audited[0]?.fields?.who)).toMatch(/^token@/);
    const purge = await post(base, 'api/purge', { group: 'shop' });
    expect(purge.status).toBe(400);
    expect(await purge.text()).toContain('confirm');

    // Send, then purge what it queued (confirmed by the group name).
    await client.ops.pause('shop');
    await new Promise((r) => setTimeout(r, 1500)); // workers read the pause every second
    const sent = (await (await post(base, 'api/send', { group: 'shop', name: 'add', args: [20, 22], runAfterMs: 60_000 })).json()) as { message: string; detail: { id: string } };
    expect(sent.message).toBe(`sent shop.add: ${sent.detail.id}`);
    expect((await client.getStatus(sent.detail.id))?.status).toBe('sent');
    expect((await post(base, 'api/send', { group: 'shop', name: 'add', args: 'nope' })).status).toBe(400);
    expect((await client.ops.counts('shop')).delayed).toBe(1);
    const purged = (await (await post(base, 'api/purge', { group: 'shop', confirm: 'shop' })).json()) as { message: string };
    expect(purged.message).toBe('shop purged (0 ready, 1 delayed, 0 dead removed)');
    expect((await client.ops.counts('shop')).delayed).toBe(0);
    await client.ops.resume('shop');
    // Failed attempts are audited too.
    expect(lines.filter((l) => l.message === 'dashboard action').map((l) => [l.fields?.action, String(l.fields?.outcome).startsWith('failed:')])).toEqual([
      ['pause', false],
      ['resume', false],
      ['purge', true],
      ['send', false],
      ['send', true],
      ['purge', false],
    ]);
  });

  it('read-only: reads answer, info says so, every action is refused and changes nothing', async () => {
    const info = (await (await fetch(`${readOnly}/api/info`, { headers: bearer })).json()) as { readOnly: boolean };
    expect(info.readOnly).toBe(true);
    for (const name of ['pause', 'retry', 'dead/redrive', 'purge']) {
      const r = await post(readOnly, `api/${name}`, { group: 'shop', ids: ['x'], confirm: 'shop' });
      expect(r.status, name).toBe(403);
      expect(((await r.json()) as { error: { code: string } }).error.code).toBe('ERR_DASHBOARD_READ_ONLY');
    }
    expect(await client.ops.paused()).toEqual([]);
  });

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

describe('dashboard with basic auth, without auth, under a path', () => {
  it('basic auth: the browser is asked; the right user and password answer', async () => {
    const url = await serve(dashboard({ client, auth: { basic: { username: 'ops', password: 'correct-horse' } }, logger }));
    const none = await fetch(`${url}/`);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Basic /);
    const basic = (u: string, p: string): Record<string, string> => ({ authorization: `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}` });
    expect((await fetch(`${url}/api/info`, { headers: basic('ops', 'wrong-password') })).status).toBe(401);
    const ok = await fetch(`${url}/api/info`, { headers: basic('ops', 'correct-horse') });
    expect(((await ok.json()) as { who: string }).who).toMatch(/^basic:ops@/);
  });

  it('auth none: loopback listener and loopback Host only (a re-pointed DNS name gets nothing)', async () => {
    const url = await serve(dashboard({ client, auth: { none: true }, logger }));
    expect((await fetch(`${url}/api/info`)).status).toBe(200);
    const { request } = await import('node:http');
    const status = await new Promise<number>((resolve, reject) => {
      const r = request(`${url}/api/info`, { headers: { host: 'evil.example' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      r.on('error', reject);
      r.end();
    });
    expect(status).toBe(403);
  });

  it('mounted under a path next to other routes: redirects to the slash, passes other paths on', async () => {
    const handler = dashboard({ client, auth: { token: TOKEN }, logger, basePath: '/admin/tasuki' });
    const s = createServer((req, res) =>
      handler(req, res, () => {
        res.statusCode = 200;
        res.end('app route');
      }),
    );
    http.push(s);
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
    const redirect = await fetch(`${url}/admin/tasuki`, { redirect: 'manual', headers: bearer });
    expect(redirect.status).toBe(308);
    expect(redirect.headers.get('location')).toBe('/admin/tasuki/');
    expect((await fetch(`${url}/admin/tasuki/api/info`, { headers: bearer })).status).toBe(200);
    expect(await (await fetch(`${url}/health`)).text()).toBe('app route');
    const login = await fetch(`${url}/admin/tasuki/login`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${TOKEN}` });
    expect(login.headers.get('set-cookie')).toContain('Path=/admin/tasuki;');
  });
});

describe('dashboard under a framework that strips its mount path (Express app.use)', () => {
  it('reads originalUrl for the redirect to the slash and the cookie path', async () => {
    const handler = dashboard({ client, auth: { token: TOKEN }, logger });
    // What Express does for app.use('/ops', handler): req.url without the mount path, req.originalUrl with it.
    const s = createServer((req, res) => {
      if (!(req.url ?? '').startsWith('/ops')) return void res.end('app');
      Object.assign(req, { originalUrl: req.url, url: (req.url ?? '').slice(4) || '/' });
      handler(req, res, () => res.end('next'));
    });
    http.push(s);
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
    const redirect = await fetch(`${url}/ops`, { redirect: 'manual', headers: bearer });
    expect(redirect.status).toBe(308);
    expect(redirect.headers.get('location')).toBe('/ops/');
    expect((await fetch(`${url}/ops/`, { headers: bearer })).status).toBe(200);
    const login = await fetch(`${url}/ops/login`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${TOKEN}` });
    expect(login.headers.get('set-cookie')).toContain('Path=/ops;');
    expect(await (await fetch(`${url}/ops/nothing-here`, { headers: bearer })).text()).toBe('next');
  });
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
