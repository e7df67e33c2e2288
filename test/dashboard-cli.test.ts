/**
 * `tasuki dashboard` spawned for real on Redis: the credential rules (none given, a weak token,
 * `--no-auth` on a non-loopback address are refused with exit code 2), `--no-auth` on loopback,
 * basic auth with `--read-only`, `--trust-proxy` (flag and config module), and a clean stop on SIGTERM.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { promisify } from 'node:util';
import { randomUUID } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { redisNamespace } from './helpers/redis.js';
import { trustProxyFrom, type DashboardFlags } from '../cli/dashboard.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
// Node with tsx's loader, not the tsx wrapper: a signal (SIGKILL too) reaches the process itself.
const TS = ['--import', 'tsx'];
const CLI = join(root, 'cli/index.ts');
const ns = redisNamespace('dash-cli');
const REDIS = ['--redis', 'redis://127.0.0.1:6379', '--prefix', ns.prefix];
const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', TASUKI_QUIET: '1' };
delete env.TASUKI_DASHBOARD_TOKEN;
delete env.TASUKI_DASHBOARD_BASIC;

afterAll(async () => {
  await ns.sweep();
  await ns.quit();
});

function run(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((r, reject) => {
    const child = spawn(process.execPath, [...TS, CLI, ...REDIS, 'dashboard', ...args], { cwd: root, env });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => r({ code, stderr }));
  });
}

/** Starts the dashboard (or a program printing "on http://…"); resolves with its URL and a stop function giving the exit code. */
function serve(args: string[], program: string[] = [CLI, ...REDIS, 'dashboard', '--port', '0'], extraEnv: Record<string, string> = {}): Promise<{ url: string; stop: () => Promise<number | null> }> {
  const child = spawn(process.execPath, [...TS, ...program, ...args], { cwd: root, env: { ...env, ...extraEnv } });
  let out = '';
  const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  return new Promise((r, reject) => {
    const timer = setTimeout(() => reject(new Error(`not started: ${out}`)), 60_000);
    const onData = (d: Buffer): void => {
      out += d.toString();
      const m = / on (http:\/\/\S+)/.exec(out);
      if (m !== null) {
        clearTimeout(timer);
        r({ url: m[1] as string, stop: () => (child.kill('SIGTERM'), exited) });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('close', () => reject(new Error(`exited: ${out}`)));
  });
}

describe('tasuki dashboard', () => {
  it('refuses to start without a credential, with a weak token, and with --no-auth off loopback', async () => {
    const none = await run(['--port', '0']);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/needs a credential/);
    const weak = await run(['--port', '0', '--token', 'short']);
    expect(weak.code).toBe(2);
    expect(weak.stderr).toMatch(/at least 16 characters/);
    const open = await run(['--port', '0', '--no-auth', '--host', '0.0.0.0']);
    expect(open.code).toBe(2);
    expect(open.stderr).toMatch(/--no-auth is refused on 0\.0\.0\.0/);
    const both = await run(['--port', '0', '--no-auth', '--token', 'a-long-enough-token-here']);
    expect(both.code).toBe(2);
    const badProxy = await run(['--port', '0', '--token', 'a-long-enough-token-here', '--trust-proxy', '10.0.0.0/99']);
    expect(badProxy.code).toBe(2);
    expect(badProxy.stderr).toMatch(/trustProxy: 10\.0\.0\.0\/99 has a bad prefix length/);
  }, 120_000);

  it('--no-auth on loopback answers; basic auth with --read-only asks and says read-only; SIGTERM stops with 0', async () => {
    const open = await serve(['--no-auth']);
    expect((await fetch(`${open.url}api/info`)).status).toBe(200);
    expect(await open.stop()).toBe(0);

    const basic = await serve(['--basic-auth', 'ops:correct-horse', '--read-only']);
    const refused = await fetch(`${basic.url}api/info`);
    expect(refused.status).toBe(401);
    expect(refused.headers.get('www-authenticate')).toMatch(/^Basic/);
    const ok = await fetch(`${basic.url}api/info`, { headers: { authorization: `Basic ${Buffer.from('ops:correct-horse').toString('base64')}` } });
    expect(await ok.json()).toMatchObject({ readOnly: true, auth: 'basic' });
    expect(await basic.stop()).toBe(0);
  }, 120_000);

  it('the examples serve: under a path in plain http, next to the application\'s routes, and in Express', async () => {
    const plain = await serve([], ['examples/dashboard-http.ts'], { PORT: '0', DASHBOARD_TOKEN: 'example-token-0123456789' });
    const origin = new URL(plain.url).origin;
    expect((await fetch(`${plain.url}api/info`, { headers: { authorization: 'Bearer example-token-0123456789' } })).status).toBe(200);
    expect((await fetch(`${plain.url}api/info`)).status).toBe(401);
    expect((await fetch(`${origin}/elsewhere`)).status).toBe(404);
    expect(await plain.stop()).toBe(0);

    const routes = await serve([], ['examples/dashboard-routes.ts'], { PORT: '0', DASHBOARD_USER: 'ops', DASHBOARD_PASSWORD: 'correct-horse' });
    expect(await (await fetch(`${routes.url}health`)).json()).toEqual({ ok: true });
    expect((await fetch(`${routes.url}ops/tasuki/api/info`)).status).toBe(401);
    const ok = await fetch(`${routes.url}ops/tasuki/api/info`, { headers: { authorization: `Basic ${Buffer.from('ops:correct-horse').toString('base64')}` } });
    expect(ok.status).toBe(200);
    expect(await routes.stop()).toBe(0);

    // Express 5, mounted with app.use: links follow the mount path (req.originalUrl).
    const ex = await serve([], ['examples/dashboard-express.ts'], { PORT: '0', DASHBOARD_TOKEN: 'example-token-0123456789' });
    expect(await (await fetch(`${ex.url}health`)).json()).toEqual({ ok: true });
    expect((await fetch(`${ex.url}ops/tasuki/api/info`)).status).toBe(401);
    const info = await fetch(`${ex.url}ops/tasuki/api/info`, { headers: { authorization: 'Bearer example-token-0123456789' } });
    expect(info.status).toBe(200);
    const bare = await fetch(`${ex.url}ops/tasuki`, { redirect: 'manual', headers: { authorization: 'Bearer example-token-0123456789' } });
    expect(bare.headers.get('location')).toBe('/ops/tasuki/');
    const script = await fetch(`${ex.url}ops/tasuki/app.js`, { headers: { authorization: 'Bearer example-token-0123456789' } });
    expect(script.status).toBe(200);
    expect(script.headers.get('content-type')).toMatch(/javascript/);
    expect(await ex.stop()).toBe(0);
  }, 120_000);

  it('takes the credential, read-only mode and the trusted proxy from the config module', async () => {
    const d = await serve([], [CLI, '--config', 'test/fixtures/dashboard-config.ts', 'dashboard', '--port', '0'], { CLI_PREFIX: ns.prefix });
    expect((await fetch(`${d.url}api/info`)).status).toBe(401);
    const info = await fetch(`${d.url}api/info`, { headers: { authorization: 'Bearer config-module-token-0123', 'x-forwarded-for': '203.0.113.4' } });
    expect(await info.json()).toMatchObject({ readOnly: true, auth: 'token', who: 'token@203.0.113.4' });
    expect(await d.stop()).toBe(0);
  }, 60_000);

  it('--trust-proxy: alone, one proxy in front; with addresses, those; absent, forwarded headers are ignored', async () => {
    const flags = (trustProxy?: boolean | string): DashboardFlags => ({ port: '0', host: '127.0.0.1', auth: true, ...(trustProxy === undefined ? {} : { trustProxy }) });
    expect(trustProxyFrom(flags(), undefined)).toBeUndefined();
    expect(trustProxyFrom(flags(), { trustProxy: ['10.0.0.1'] })).toEqual(['10.0.0.1']);
    expect(trustProxyFrom(flags(true), { trustProxy: ['10.0.0.1'] })).toBe(true);
    expect(trustProxyFrom(flags('10.0.0.0/8, ::1'), undefined)).toEqual(['10.0.0.0/8', '::1']);
    expect(() => trustProxyFrom(flags(','), undefined)).toThrow(/--trust-proxy takes/);

    const token = 'a-long-enough-token-here';
    const login = (url: string): Promise<Response> =>
      fetch(`${url}login`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-proto': 'https', 'x-forwarded-for': '203.0.113.5' }, body: `token=${token}` });
    const behind = await serve(['--token', token, '--trust-proxy']);
    expect((await login(behind.url)).headers.get('set-cookie')).toMatch(/; Secure$/);
    const info = await fetch(`${behind.url}api/info`, { headers: { authorization: `Bearer ${token}`, 'x-forwarded-for': '203.0.113.5' } });
    expect(((await info.json()) as { who: string }).who).toBe('token@203.0.113.5');
    expect(await behind.stop()).toBe(0);
    const direct = await serve(['--token', token]);
    expect((await login(direct.url)).headers.get('set-cookie')).not.toMatch(/Secure/);
    expect(await direct.stop()).toBe(0);
  }, 120_000);

  it('the built package serves the UI files that npm run build wrote into dist/dashboard/assets', async () => {
    // Inside the checkout (git-ignored) so that the compiled modules find node_modules.
    const dist = join(root, '.scratch', `dist-${randomUUID().slice(0, 8)}`);
    try {
      const run = promisify(execFile);
      await run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json'), '--outDir', dist, '--sourceMap', 'false', '--declaration', 'false'], { cwd: root });
      await run(process.execPath, [join(root, 'scripts/build-dashboard.mjs'), dist], { cwd: root });
      const built = readFileSync(join(dist, 'dashboard/assets/app.js'), 'utf8');
      expect(built.length).toBeGreaterThan(1000);
      const d = await new Promise<{ url: string; stop: () => Promise<number | null> }>((r, reject) => {
        const child = spawn(process.execPath, [join(dist, 'cli/index.js'), ...REDIS, 'dashboard', '--port', '0', '--no-auth'], { cwd: root, env });
        let out = '';
        const exited = new Promise<number | null>((x) => child.on('close', (code) => x(code)));
        child.stdout.on('data', (b: Buffer) => {
          out += b.toString();
          const m = / on (http:\/\/\S+)/.exec(out);
          if (m !== null) r({ url: m[1] as string, stop: () => (child.kill('SIGTERM'), exited) });
        });
        child.on('close', () => reject(new Error(`exited: ${out}`)));
      });
      const page = await fetch(d.url);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('<script src="app.js" defer></script>');
      expect(await (await fetch(`${d.url}app.js`)).text()).toBe(built);
      expect(await d.stop()).toBe(0);
    } finally {
      rmSync(dist, { recursive: true, force: true });
    }
  }, 180_000);
});
