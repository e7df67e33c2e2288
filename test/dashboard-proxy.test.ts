/**
 * The dashboard behind a reverse proxy (`trustProxy`), without a browser: off by default the
 * `X-Forwarded-*` headers change nothing; on, the client address (guessing brake, audit `who`) is
 * the right-most untrusted `X-Forwarded-For` hop, `X-Forwarded-Proto: https` makes the session
 * cookie `Secure`, and the same-origin check compares with `X-Forwarded-Host`; with a list, only
 * connections from a listed proxy are believed. Option checks.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server } from '../src/server.js';
import type { Client } from '../src/client.js';
import { silentLogger } from '../src/logger.js';
import { dashboard, type DashboardOptions } from '../dashboard/index.js';

const TOKEN = 'a-long-test-token-0123456789';
const bearer = { authorization: `Bearer ${TOKEN}` };
let server: Server;
let client: Client;
const http: HttpServer[] = [];

async function serve(options: Partial<DashboardOptions> = {}): Promise<string> {
  const handler = dashboard({ client, auth: { token: TOKEN }, logger: silentLogger, ...options });
  const s = createServer((req, res) => handler(req, res));
  http.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

beforeAll(async () => {
  server = new Server({ logger: silentLogger });
  server.add('px', 'add', (a: number, b: number) => a + b);
  await server.run('px', 1);
  client = server.client();
});

afterAll(async () => {
  await Promise.all(http.map((s) => new Promise((r) => s.close(r))));
  await server.shutdown(1000);
});

/** Who the dashboard says the caller is (`token@<address>`). */
async function who(base: string, headers: Record<string, string> = {}): Promise<string> {
  const r = await fetch(`${base}/api/info`, { headers: { ...bearer, ...headers } });
  expect(r.status).toBe(200);
  return ((await r.json()) as { who: string }).who;
}

function login(base: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${base}/login`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: new URLSearchParams({ token: TOKEN }).toString() });
}

function pause(base: string, headers: Record<string, string>): Promise<Response> {
  return fetch(`${base}/api/pause`, { method: 'POST', headers: { ...bearer, 'content-type': 'application/json', 'x-tasuki-dashboard': '1', ...headers }, body: JSON.stringify({ group: 'px' }) });
}

/** Ten wrong tokens with these headers. */
async function guess(base: string, headers: Record<string, string>): Promise<void> {
  for (let i = 0; i < 10; i++) expect((await fetch(`${base}/api/info`, { headers: { authorization: `Bearer wrong-guess-${i}-xxxxxxxx`, ...headers } })).status).toBe(401);
}

const forwarded = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'dash.example.com' };

describe('trustProxy off (the default): forwarded headers are ignored', () => {
  it('the socket address, no Secure cookie, Host for the same-origin check', async () => {
    const base = await serve();
    expect(await who(base, { 'x-forwarded-for': '203.0.113.9' })).toBe('token@127.0.0.1');
    expect((await login(base, forwarded)).headers.get('set-cookie')).not.toMatch(/Secure/);
    expect((await pause(base, { ...forwarded, origin: 'https://dash.example.com' })).status).toBe(403);
    // A client cannot dodge the brake by claiming other addresses.
    for (let i = 0; i < 10; i++) expect((await fetch(`${base}/api/info`, { headers: { authorization: `Bearer wrong-${i}-xxxxxxxxxxxx`, 'x-forwarded-for': `198.51.100.${i}` } })).status).toBe(401);
    expect((await fetch(`${base}/api/info`, { headers: { ...bearer, 'x-forwarded-for': '198.51.100.200' } })).status).toBe(429);
    expect(await client.ops.paused()).toEqual([]);
  });
});

describe('trustProxy: true (one proxy in front)', () => {
  it('the client is the right-most X-Forwarded-For entry: the brake and the audit name it', async () => {
    const base = await serve({ trustProxy: true });
    expect(await who(base)).toBe('token@127.0.0.1'); // no header: the socket
    expect(await who(base, { 'x-forwarded-for': '203.0.113.7' })).toBe('token@203.0.113.7');
    // What the client put in front of the proxy's entry is not believed.
    expect(await who(base, { 'x-forwarded-for': '10.9.9.9, 203.0.113.7' })).toBe('token@203.0.113.7');
    expect(await who(base, { 'x-forwarded-for': '[2001:db8::1]:4711' })).toBe('token@2001:db8::1');
    await guess(base, { 'x-forwarded-for': '203.0.113.7' });
    expect((await fetch(`${base}/api/info`, { headers: { ...bearer, 'x-forwarded-for': '1.1.1.1, 203.0.113.7' } })).status).toBe(429);
    expect((await login(base, { 'x-forwarded-for': '203.0.113.7' })).status).toBe(429);
    // Another client behind the same proxy is not held back.
    expect(await who(base, { 'x-forwarded-for': '203.0.113.8' })).toBe('token@203.0.113.8');
  });

  it('X-Forwarded-Proto https makes the session cookie Secure; X-Forwarded-Host is the origin checked', async () => {
    const base = await serve({ trustProxy: true });
    expect((await login(base, { 'x-forwarded-proto': 'https' })).headers.get('set-cookie')).toMatch(/; Secure$/);
    expect((await login(base, { 'x-forwarded-proto': 'http' })).headers.get('set-cookie')).not.toMatch(/Secure/);
    expect((await login(base)).headers.get('set-cookie')).not.toMatch(/Secure/);
    // Repeated values: the first counts.
    expect((await login(base, { 'x-forwarded-proto': 'https, http' })).headers.get('set-cookie')).toMatch(/; Secure$/);
    expect((await login(base, { 'x-forwarded-proto': 'http, https' })).headers.get('set-cookie')).not.toMatch(/Secure/);
    expect((await login(base, { 'x-forwarded-host': 'dash.example.com, 127.0.0.1', origin: 'https://dash.example.com' })).status).toBe(303);
    expect((await login(base, { 'x-forwarded-host': '127.0.0.1, dash.example.com', origin: 'https://dash.example.com' })).status).toBe(403);
    // The browser's Origin is the public name; the proxy talks to 127.0.0.1.
    expect((await login(base, { ...forwarded, origin: 'https://dash.example.com' })).status).toBe(303);
    expect((await login(base, { ...forwarded, origin: 'https://evil.example' })).status).toBe(403);
    expect((await pause(base, { ...forwarded, origin: 'https://evil.example' })).status).toBe(403);
    expect(await client.ops.paused()).toEqual([]);
    expect((await pause(base, { ...forwarded, 'x-forwarded-host': 'Dash.Example.COM', origin: 'https://dash.example.com' })).status).toBe(200);
    expect(await client.ops.paused()).toEqual(['px']);
    await client.ops.resume('px');
    // Without X-Forwarded-Host the Host header is compared, as without a proxy.
    expect((await pause(base, { origin: 'https://dash.example.com' })).status).toBe(403);
    expect((await pause(base, { origin: base })).status).toBe(200);
    await client.ops.resume('px');
  });
});

describe('trustProxy: a list of proxies', () => {
  it('skips the listed hops from the right; the first one not listed is the client', async () => {
    const base = await serve({ trustProxy: ['127.0.0.1', '10.0.0.0/8'] });
    expect(await who(base, { 'x-forwarded-for': '198.51.100.1, 10.1.2.3' })).toBe('token@198.51.100.1');
    expect(await who(base, { 'x-forwarded-for': '192.0.2.5, 198.51.100.1, 10.1.2.3, 10.0.0.1' })).toBe('token@198.51.100.1');
    // Every hop trusted: the left-most; an entry that is no address ends the chain.
    expect(await who(base, { 'x-forwarded-for': '10.0.0.7, 10.0.0.8' })).toBe('token@10.0.0.7');
    expect(await who(base, { 'x-forwarded-for': 'garbage, 10.0.0.8' })).toBe('token@10.0.0.8');
    expect((await login(base, forwarded)).headers.get('set-cookie')).toMatch(/; Secure$/);
  });

  it('a connection from an address not listed: its headers are ignored', async () => {
    const base = await serve({ trustProxy: ['10.0.0.0/8', '::1'] });
    expect(await who(base, { 'x-forwarded-for': '198.51.100.1' })).toBe('token@127.0.0.1');
    expect((await login(base, forwarded)).headers.get('set-cookie')).not.toMatch(/Secure/);
    expect((await pause(base, { ...forwarded, origin: 'https://dash.example.com' })).status).toBe(403);
  });
});

describe('trustProxy option checks', () => {
  it('refuses bad entries, an empty list, and the combination with auth none', () => {
    for (const trustProxy of [['nope'], ['10.0.0.0/33'], ['10.0.0.0/x'], ['1.2.3.4/8/8'], [], 'yes']) {
      expect(() => dashboard({ client, auth: { token: TOKEN }, trustProxy } as DashboardOptions), JSON.stringify(trustProxy)).toThrow(/trustProxy/);
    }
    expect(() => dashboard({ client, auth: { none: true }, trustProxy: true })).toThrow(/trustProxy cannot be combined/);
    expect(() => dashboard({ client, auth: { none: true }, trustProxy: false })).not.toThrow();
    expect(() => dashboard({ client, auth: { token: TOKEN }, trustProxy: ['::1', '2001:db8::/32', '::ffff:127.0.0.1'] })).not.toThrow();
  });
});
