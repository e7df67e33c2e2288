/**
 * The dashboard's request handler without a browser: credentials (token, login cookie, basic auth,
 * loopback-only `none`), sign-in sessions (ended by Sign out server-side, or idle), cross-site
 * checks of actions, read-only mode, mounting under a path (plain http, Express-style), the audit log. The API's answers: `dashboard-api.test.ts`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer } from 'node:http';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import type { Server } from '../src/server.js';
import type { Client } from '../src/client.js';
import { TOKEN, action, auditLogger, bearer, closeAll, lines, post, serve, shopServer, track } from './helpers/dashboard-http.js';
import { dashboard, type DashboardOptions } from '../dashboard/index.js';
import { MAX_SESSIONS, SESSION_IDLE_MS, Sessions } from '../dashboard/sessions.js';

const logger = auditLogger;
let server: Server;
let client: Client;
let base: string;
let readOnly: string;

beforeAll(async () => {
  server = await shopServer();
  client = server.client();
  base = await serve(dashboard({ client, auth: { token: TOKEN }, logger }));
  readOnly = await serve(dashboard({ client, auth: { token: TOKEN }, logger, readOnly: true }));
});

afterAll(async () => {
  await closeAll();
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
    const forged = await fetch(`${base}/api/info`, { headers: { cookie: 'tasuki_dashboard=forged' } });
    expect(forged.status).toBe(401);
    expect(forged.headers.get('set-cookie')).toMatch(/^tasuki_dashboard=; .*Max-Age=0/);
    // Each sign-in is its own session; signing out ends it on the server: a copy of its cookie stops working.
    const other = ((await form(TOKEN)).headers.get('set-cookie') ?? '').split(';')[0] as string;
    expect(other).not.toBe(session);
    lines.length = 0;
    const out = await fetch(`${base}/logout`, { method: 'POST', redirect: 'manual', headers: { cookie: session, origin: base } });
    expect(out.status).toBe(303);
    expect(out.headers.get('set-cookie')).toMatch(/^tasuki_dashboard=; .*Max-Age=0/);
    expect(lines.map((l) => l.message)).toEqual(['dashboard logout']);
    const copied = await fetch(`${base}/api/info`, { headers: { cookie: session } });
    expect(copied.status).toBe(401);
    expect(copied.headers.get('set-cookie')).toMatch(/^tasuki_dashboard=; .*Max-Age=0/);
    expect((await fetch(`${base}/`, { headers: { cookie: session } })).status).toBe(401);
    expect((await post(base, 'api/pause', { group: 'shop' }, { cookie: session, 'content-type': 'application/json', 'x-tasuki-dashboard': '1' })).status).toBe(401);
    expect((await fetch(`${base}/api/info`, { headers: { cookie: other } })).status).toBe(200);
    // Signing out a cross-site form is refused (the session stays).
    expect((await fetch(`${base}/logout`, { method: 'POST', redirect: 'manual', headers: { cookie: other, origin: 'https://evil.example' } })).status).toBe(403);
    expect((await fetch(`${base}/api/info`, { headers: { cookie: other } })).status).toBe(200);
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

});

describe('sign-in sessions', () => {
  it(`end after ${SESSION_IDLE_MS / 3_600_000} h without a request; each request restarts the wait`, () => {
    const s = new Sessions();
    const t0 = 1_000_000;
    const a = s.open(t0);
    expect(a).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(s.touch(a, t0 + SESSION_IDLE_MS - 1)).toBe(true);
    expect(s.touch(a, t0 + 2 * SESSION_IDLE_MS - 2)).toBe(true);
    expect(s.touch(a, t0 + 3 * SESSION_IDLE_MS - 2)).toBe(false);
    expect(s.touch(a, t0 + 3 * SESSION_IDLE_MS - 2)).toBe(false);
    expect(s.touch('not-a-session', t0)).toBe(false);
    const b = s.open(t0);
    expect(s.close(b)).toBe(true);
    expect(s.touch(b, t0)).toBe(false);
    expect(s.close(b)).toBe(false);
  });

  it(`keep at most ${MAX_SESSIONS}: past it the least recently used ends; expired ones go when a session opens`, () => {
    const s = new Sessions(1000, 3);
    const [a, b, c] = [s.open(0), s.open(1), s.open(2)];
    expect(s.touch(a, 3)).toBe(true); // b is now the least recently used
    const d = s.open(4);
    expect([s.touch(b, 5), s.touch(a, 5), s.touch(c, 5), s.touch(d, 5)]).toEqual([false, true, true, true]);
    expect(s.size).toBe(3);
    s.open(2000);
    expect(s.size).toBe(1);
  });
});

describe('the UI code', () => {
  it('never hands data to an HTML parser (no innerHTML, outerHTML, insertAdjacentHTML, document.write, eval)', () => {
    const dir = join(dirname(fileURLToPath(import.meta.url)), '../dashboard/ui');
    const files = readdirSync(dir).filter((f) => f.endsWith('.ts'));
    expect(files.length).toBeGreaterThan(5);
    for (const f of files) {
      const code = readFileSync(join(dir, f), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
      expect(code.match(/innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function\(/g), f).toBeNull();
    }
  });
});

describe('guessing the credential', () => {
  it('ten failed credentials a minute from one address, then 429 (the right one too) for the rest of the minute', async () => {
    const url = await serve(dashboard({ client, auth: { token: TOKEN }, logger }));
    for (let i = 0; i < 10; i++) expect((await fetch(`${url}/api/info`, { headers: { authorization: `Bearer wrong-guess-${i}-xxxxxxxx` } })).status).toBe(401);
    expect((await fetch(`${url}/api/info`, { headers: bearer })).status).toBe(429);
    const login = await fetch(`${url}/login`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${TOKEN}` });
    expect(login.status).toBe(429);
    // Requests without any credential are not counted: the sign-in page still shows.
    expect((await fetch(`${url}/`)).status).toBe(401);
  });
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
    track(s);
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
    track(s);
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
