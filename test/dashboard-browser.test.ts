/**
 * The dashboard end to end in headless Chromium (Debian's package, driven by playwright-core):
 * two real workers (`tasuki worker`) and the dashboard (`tasuki dashboard`) on Redis, each its own
 * process. Without the credential every page, read and action is refused (plain fetch too, and a
 * page of another site cannot act); signed in: the counts and workers agree with `tasuki status`
 * and `tasuki workers`, a failed task is found by id search and its error shown, a retry succeeds,
 * a task is sent from the page, a dead letter is redriven, a group paused and resumed, argument values stay text, the live view
 * polls at most once a second, and read-only mode shows no action. Screenshots of the main pages
 * go to `.screenshots/` (git-ignored; the README shows them).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomUUID } from 'node:crypto';
import type { Browser, Page } from 'playwright-core';
import { Client } from '../src/client.js';
import { silentLogger } from '../src/logger.js';
import { RedisBroker } from '../brokers/redis.js';
import { RedisBackend } from '../backends/redis.js';
import { dashboard } from '../dashboard/index.js';
import { redisNamespace } from './helpers/redis.js';
import { launchChromium, signIn } from './helpers/chromium.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
// Node with tsx's loader, not the tsx wrapper: a signal (SIGKILL too) reaches the process itself.
const TS = ['--import', 'tsx'];
const CLI = join(root, 'cli/index.ts');
const SHOTS = join(root, '.screenshots');
const TOKEN = `dash-${randomUUID()}`;
const ns = redisNamespace('dash');
const group = `dash-${randomUUID().slice(0, 8)}`;
const scratch = mkdtempSync(join(tmpdir(), 'tasuki-dash-'));
const gate = join(scratch, 'gate');
const env = { ...process.env, CLI_PREFIX: ns.prefix, DASH_GROUP: group, DASH_GATE: gate, NO_COLOR: '1', TASUKI_QUIET: '1' };
const CONFIG = ['--config', 'test/fixtures/cli-config.ts'];

interface Proc {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

/** Spawns the CLI and resolves once its output matches `ready`. */
function start(args: string[], ready: RegExp): Promise<Proc> {
  const child = spawn(process.execPath, [...TS, CLI, ...CONFIG, ...args], { cwd: root, env });
  let out = '';
  const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  return new Promise((resolveStart, reject) => {
    const timer = setTimeout(() => reject(new Error(`not started: ${out}`)), 90_000);
    const onData = (d: Buffer): void => {
      out += d.toString();
      if (ready.test(out)) {
        clearTimeout(timer);
        resolveStart({ child, output: () => out, exited });
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.on('close', () => reject(new Error(`exited: ${out}`)));
  });
}

/** Runs a CLI command and parses its `--json` output. */
function cliJson<T>(args: string[]): T {
  return JSON.parse(execFileSync(process.execPath, [...TS, CLI, ...CONFIG, '--json', ...args], { cwd: root, env, encoding: 'utf8' })) as T;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function until(check: () => Promise<boolean>, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(200);
  }
}

let browser: Browser;
let client: Client;
const procs: Proc[] = [];
let url = '';
const servers: HttpServer[] = [];

beforeAll(async () => {
  mkdirSync(SHOTS, { recursive: true });
  browser = await launchChromium();
  client = new Client({ broker: new RedisBroker({ prefix: ns.prefix, logger: silentLogger }), backend: new RedisBackend({ prefix: ns.prefix, logger: silentLogger }), logger: silentLogger });
  const worker = (): Promise<Proc> => start(['worker', 'test/fixtures/dashboard-tasks.ts', '--group', group, '--concurrency', '2'], /worker running/);
  const started = await Promise.all([worker(), worker(), start(['dashboard', '--port', '0', '--token', TOKEN], /dashboard on (http:\/\/\S+)/)]);
  procs.push(...started);
  url = /dashboard on (http:\/\/\S+)/.exec(started[2].output())?.[1] ?? '';
}, 180_000);

afterAll(async () => {
  await browser?.close();
  // Workers stop gracefully (their registry entries go) before the keys are swept.
  await Promise.all(
    procs.map(async (p) => {
      p.child.kill('SIGINT');
      const timer = setTimeout(() => p.child.kill('SIGKILL'), 20_000);
      await p.exited;
      clearTimeout(timer);
    }),
  );
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  await client?.ops.purge(group).catch(() => undefined);
  await client?.close();
  await ns.sweep();
  expect(await ns.keys()).toEqual([]);
  await ns.quit();
  rmSync(scratch, { recursive: true, force: true });
});

const signedIn = (): Promise<Page> => signIn(browser, url, TOKEN);

const cell = (page: Page, col: string): Promise<string> => page.locator(`tr[data-group="${group}"] td[data-col="${col}"]`).innerText();

describe('dashboard in a browser, on Redis with real workers', () => {
  let boomId = '';
  let flakyId = '';
  let gatedId = '';
  let echoId = '';

  it('without the credential every page, read and action is refused; another site cannot act', async () => {
    const page = await browser.newPage();
    const res = await page.goto(url);
    expect(res?.status()).toBe(401);
    expect(await page.locator('#token').count()).toBe(1);
    expect(await page.content()).not.toContain(group);
    for (const path of ['app.js', 'api/info', 'api/overview', `api/tasks?group=${group}`, 'api/task?id=x', `api/dead?group=${group}`]) {
      expect((await page.goto(`${url}${path}`))?.status(), path).toBe(401);
      expect((await fetch(`${url}${path}`)).status, path).toBe(401);
    }
    for (const a of ['pause', 'resume', 'retry', 'abort', 'dead/redrive', 'dead/delete', 'purge']) {
      const r = await fetch(`${url}api/${a}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-tasuki-dashboard': '1' }, body: JSON.stringify({ group, ids: ['x'], id: 'x', all: true, confirm: group }) });
      expect(r.status, a).toBe(401);
    }
    await page.close();

    // Signed in, then a page of another origin tries to act: the preflight of its fetch is never granted, its form post is refused.
    const victim = await signedIn();
    const evil = createServer((_req, res) => {
      res.setHeader('content-type', 'text/html');
      res.end('<form id="f" method="post" enctype="text/plain"><input name="x" value="y"></form>');
    });
    servers.push(evil);
    await new Promise<void>((r) => evil.listen(0, '127.0.0.1', r));
    const evilUrl = `http://localhost:${(evil.address() as AddressInfo).port}/`;
    await victim.goto(evilUrl);
    const fetched = await victim.evaluate(async (target) => {
      try {
        const r = await fetch(`${target}api/pause`, { method: 'POST', credentials: 'include', headers: { 'content-type': 'application/json', 'x-tasuki-dashboard': '1' }, body: JSON.stringify({ group: 'x' }) });
        return `status ${r.status}`;
      } catch {
        return 'blocked';
      }
    }, url);
    expect(fetched).toBe('blocked');
    const [formAnswer] = await Promise.all([victim.waitForResponse((r) => r.url().endsWith('/api/pause')), victim.evaluate((target) => {
      const doc = (globalThis as unknown as { document: { getElementById(id: string): { action: string; submit(): void } } }).document;
      const f = doc.getElementById('f');
      f.action = `${target}api/pause`;
      f.submit();
    }, url)]);
    expect([401, 403]).toContain(formAnswer.status());
    expect(await client.ops.paused()).toEqual([]);
    await victim.close();
  }, 120_000);

  it('counts and workers agree with the CLI; a failed task is found by search and shows its error; a retry succeeds', async () => {
    const marker = join(scratch, 'flaky');
    const adds = await Promise.all([1, 2, 3].map((i) => client.send(group, 'add', i, i)));
    boomId = await client.with({ retryCount: 0 }).send(group, 'boom', 'bad input');
    flakyId = await client.with({ retryCount: 0 }).send(group, 'flaky', marker);
    gatedId = await client.send(group, 'gated', 'x');
    echoId = await client.send(group, 'echo', '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>');
    for (const id of [...adds, echoId]) expect((await client.getResult(id, 60_000)).status).toBe('success');
    for (const id of [boomId, flakyId]) expect((await client.getResult(id, 60_000)).status).toBe('failure');
    await until(async () => (await client.deadLetters(group)).length === 1);

    const page = await signedIn();
    await page.waitForSelector(`tr[data-group="${group}"]`);
    // Everything has settled: the page and `tasuki status` read the same numbers.
    const status = cliJson<{ groups: Array<{ ready: number; delayed: number; inFlight: number; dead: number; statuses: { failure: number } }> }>(['status', group]).groups[0];
    await expect.poll(() => cell(page, 'failed'), { timeout: 30_000 }).toBe(String(status?.statuses.failure));
    expect(status?.statuses.failure).toBe(3);
    expect(await cell(page, 'dead')).toBe(String(status?.dead));
    expect(await cell(page, 'ready')).toBe(String(status?.ready));
    expect(await cell(page, 'delayed')).toBe(String(status?.delayed));
    expect(await cell(page, 'inflight')).toBe(String(status?.inFlight));
    // Rates are read again every 10 s at most.
    await expect.poll(() => cell(page, 'throughput'), { timeout: 30_000 }).toContain('4/h'); // 3 adds and the echo
    expect(await cell(page, 'failures')).toContain('42.9%'); // boom, flaky, gated: 3 of 7
    const workers = cliJson<Array<{ id: string; groups: Array<{ group: string }> }>>(['workers']).filter((w) => w.groups.some((g) => g.group === group));
    expect(workers).toHaveLength(2);
    for (const w of workers) await page.waitForSelector(`#workers tr[data-worker="${w.id}"]`);
    await page.screenshot({ path: join(SHOTS, 'dashboard-overview.png'), fullPage: true });

    // Find the failed task by the start of its id.
    await page.click('nav a[data-nav="tasks"]');
    await page.fill('#f-group', group);
    await page.selectOption('#f-status', 'failure');
    await page.fill('#f-q', boomId.slice(0, 8));
    await page.click('#filters button[type=submit]');
    await page.waitForSelector(`#tasks tr[data-task="${boomId}"]`);
    expect(await page.locator('#tasks tbody tr').count()).toBe(1);
    await page.fill('#f-q', '');
    await page.click('#filters button[type=submit]');
    await expect.poll(() => page.locator('#tasks tbody tr').count(), { timeout: 30_000 }).toBe(3);
    await page.screenshot({ path: join(SHOTS, 'dashboard-tasks.png'), fullPage: true });
    await page.click(`#tasks tr[data-task="${boomId}"] td.id a`);
    await page.waitForSelector('#task-error');
    expect(await page.locator('#task-error').innerText()).toContain('Error: boom: bad input');
    expect(await page.locator('#task-error pre.stack').innerText()).toMatch(/boom: bad input\n\s+at /);
    expect(await page.locator('[data-value="arguments"] pre').innerText()).toContain('"bad input"');
    await page.screenshot({ path: join(SHOTS, 'dashboard-task.png'), fullPage: true });

    // Retry the flaky task: it succeeds, and the page shows it without a reload.
    await page.fill('#goto-id', flakyId);
    await page.click('#goto button');
    await page.waitForSelector('[data-fact="status"] .s-failure');
    await page.click('button[data-action="retry"]');
    await expect.poll(() => page.locator('#flash').innerText()).toContain('1 sent again');
    await page.waitForSelector('[data-fact="status"] .s-success', { timeout: 60_000 });
    expect(await page.locator('[data-value="result"] pre').innerText()).toBe('"second run ok"');
    expect((await client.getResult(flakyId, 10_000)).value).toBe('second run ok');

    // Send a task from the group's page.
    await page.goto(`${url}#/tasks?group=${group}`);
    await page.click('#send >> xpath=.. >> summary');
    await page.fill('#send input[name=name]', 'add');
    await page.fill('#send input[name=args]', '[2, 3]');
    await page.click('#send button[type=submit]');
    await expect.poll(() => page.locator('#flash').innerText()).toContain(`sent ${group}.add: `);
    const sentId = (await page.locator('#flash').innerText()).split(': ')[1]?.trim() ?? '';
    expect((await client.getResult(sentId, 60_000)).value).toBe(5);

    // Argument and result values are text, never HTML.
    await page.fill('#goto-id', echoId);
    await page.click('#goto button');
    await page.waitForSelector('[data-value="result"] pre');
    expect(await page.locator('[data-value="result"] pre').innerText()).toContain('<img src=x onerror=\\"window.__xss=1\\"><script>');
    expect(await page.locator('#task img, #task script').count()).toBe(0);
    expect(await page.evaluate(() => (globalThis as unknown as { __xss?: number }).__xss)).toBeUndefined();
    await page.close();
  }, 180_000);

  it('redrives a dead letter (it then succeeds), pauses and resumes a group; every action is in the log', async () => {
    const page = await signedIn();
    await page.click(`tr[data-group="${group}"] td[data-col="dead"] a`);
    await page.waitForSelector(`#dead tr[data-task="${gatedId}"]`);
    await page.screenshot({ path: join(SHOTS, 'dashboard-dead.png'), fullPage: true });
    writeFileSync(gate, 'open');
    await page.click(`#dead tr[data-task="${gatedId}"] button[data-action="redrive"]`);
    await expect.poll(() => page.locator('#flash').innerText()).toContain('1 dead letter(s) moved back');
    await until(async () => (await client.getStatus(gatedId))?.status === 'success');
    await page.waitForSelector('#dead-list p.muted');
    expect(await page.locator('#dead-list').innerText()).toContain('No dead letters.');

    await page.click('nav a[data-nav="overview"]');
    await page.click(`tr[data-group="${group}"] button[data-action="pause"]`);
    await page.waitForSelector(`tr[data-group="${group}"] .s-paused`);
    expect(await client.ops.paused()).toEqual([group]);
    // Once both workers report the pause, a task sent now waits.
    await until(async () => (await client.ops.workers()).filter((w) => w.groups.some((g) => g.group === group && g.paused)).length === 2);
    const held = await client.send(group, 'add', 20, 22);
    await sleep(1500);
    expect((await client.getStatus(held))?.status).toBe('sent');
    // Held: queued, or fetched by a fetch that was already waiting when the pause came (leased, not started).
    await expect.poll(async () => Number(await cell(page, 'ready')) + Number(await cell(page, 'inflight')), { timeout: 30_000 }).toBe(1);
    await page.click(`tr[data-group="${group}"] button[data-action="resume"]`);
    await page.waitForSelector(`tr[data-group="${group}"] .s-active`);
    expect((await client.getResult(held, 60_000)).value).toBe(42);

    // The live view: no more than one request a second while nothing is clicked.
    const seen: number[] = [];
    page.on('request', (r) => void (r.url().includes('/api/') && seen.push(Date.now())));
    const t0 = Date.now();
    await sleep(5000);
    const elapsed = Date.now() - t0;
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.length).toBeLessThanOrEqual(Math.ceil(elapsed / 1000));
    // A hidden tab asks nothing; shown again, it refreshes at once.
    await page.evaluate(() => {
      const doc = (globalThis as unknown as { document: object }).document;
      Object.defineProperty(doc, 'hidden', { configurable: true, get: () => true });
    });
    await sleep(2500); // a refresh already under way may still land
    const hiddenFrom = seen.length;
    await sleep(4000);
    expect(seen.length).toBe(hiddenFrom);
    await page.evaluate(() => {
      const doc = (globalThis as unknown as { document: { dispatchEvent(e: unknown): void } }).document;
      Object.defineProperty(doc, 'hidden', { configurable: true, get: () => false });
      doc.dispatchEvent(new (globalThis as unknown as { Event: new (t: string) => unknown }).Event('visibilitychange'));
    });
    await expect.poll(() => seen.length, { timeout: 10_000 }).toBeGreaterThan(hiddenFrom);
    await page.close();

    const log = procs[2]?.output() ?? '';
    for (const action of ['retry', 'send', 'dead/redrive', 'pause', 'resume']) expect(log).toMatch(new RegExp(`dashboard action who=token@127\\.0\\.0\\.1 action=${action.replace('/', '\\/')} `));
  }, 180_000);

  it('a group of 10 000 tasks: 50 rows a page, older pages, an id found by its start', async () => {
    const big = `${group}-big`;
    const ids: string[] = [];
    for (let i = 0; i < 10_000; i += 500) ids.push(...(await Promise.all(Array.from({ length: 500 }, () => client.send(big, 'noop')))));
    try {
      const page = await signedIn();
      await page.goto(`${url}#/tasks?group=${big}`);
      await page.waitForSelector('#tasks tbody tr');
      expect(await page.locator('#tasks tbody tr').count()).toBe(50);
      const first = await page.locator('#tasks tbody tr').first().getAttribute('data-task');
      await page.click('#next-page');
      await expect.poll(() => page.locator('#task-list .muted').last().innerText()).toContain('page 2');
      expect(await page.locator('#tasks tbody tr').count()).toBe(50);
      expect(await page.locator(`#tasks tr[data-task="${first}"]`).count()).toBe(0);
      // A recent id is found in the first 5 000 entries searched; an old one after going on once.
      const recent = ids[9000] as string;
      await page.fill('#f-q', recent.slice(0, 13));
      await page.click('#filters button[type=submit]');
      await page.waitForSelector(`#tasks tr[data-task="${recent}"]`);
      const old = ids[1234] as string;
      await page.fill('#f-q', old.slice(0, 13));
      await page.click('#filters button[type=submit]');
      await expect.poll(() => page.locator('#task-list').innerText(), { timeout: 30_000 }).toContain('5000 entries searched');
      expect(await page.locator(`#tasks tr[data-task="${old}"]`).count()).toBe(0);
      await page.click('#next-page');
      await page.waitForSelector(`#tasks tr[data-task="${old}"]`);
      await page.close();
    } finally {
      await client.ops.purge(big);
    }
  }, 120_000);

  it('read-only: no action is shown, and the API refuses them', async () => {
    const handler = dashboard({ client, auth: { token: TOKEN }, readOnly: true, logger: silentLogger });
    const s = createServer((req, res) => handler(req, res));
    servers.push(s);
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const ro = `http://127.0.0.1:${(s.address() as AddressInfo).port}/`;
    const page = await browser.newPage({ extraHTTPHeaders: { authorization: `Bearer ${TOKEN}` } });
    await page.goto(ro);
    await page.waitForSelector(`tr[data-group="${group}"]`);
    expect(await page.locator('#who').innerText()).toContain('read-only');
    expect(await page.locator('button.action').count()).toBe(0);
    // A group added by name (for backends that cannot list groups) is shown with its counts.
    await page.click('details.more summary');
    await page.fill('#add-group input', 'added-by-name');
    await page.click('#add-group button');
    await page.waitForSelector('tr[data-group="added-by-name"] td[data-col="ready"]');
    expect(await page.locator('tr[data-group="added-by-name"] td[data-col="ready"]').innerText()).toBe('0');
    await page.goto(`${ro}#/task?id=${boomId}`);
    await page.waitForSelector('#task-error');
    expect(await page.locator('button.action').count()).toBe(0);
    const refused = await page.evaluate(async () => (await fetch('api/retry', { method: 'POST', headers: { 'content-type': 'application/json', 'x-tasuki-dashboard': '1' }, body: JSON.stringify({ ids: ['x'] }) })).status);
    expect(refused).toBe(403);
    await page.close();
  }, 60_000);

  it('stops on SIGINT with exit code 0', async () => {
    const d = procs[2] as Proc;
    d.child.kill('SIGINT');
    expect(await d.exited).toBe(0);
  }, 30_000);
});
