/**
 * The dashboard's destructive actions done through the page in headless Chromium, on Redis with an
 * in-process worker and handler (the CLI processes are `dashboard-browser.test.ts`'s): abort of a
 * running and of a queued task, purge with its typed confirmation, and deleting dead letters —
 * one, the selected ones, all. A dismissed confirmation sends nothing; every action is audited.
 * Sign out ends the session on the server: a copy of its cookie no longer works.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import type { Browser, Page } from 'playwright-core';
import { Server } from '../src/server.js';
import type { Client } from '../src/client.js';
import type { TaskCtl } from '../src/ctl.js';
import { silentLogger, type Logger } from '../src/logger.js';
import { RedisBroker } from '../brokers/redis.js';
import { RedisBackend } from '../backends/redis.js';
import { dashboard } from '../dashboard/index.js';
import { redisNamespace } from './helpers/redis.js';
import { launchChromium, signIn } from './helpers/chromium.js';

const TOKEN = `dash-${randomUUID()}`;
const ns = redisNamespace('dash-act');
const group = `act-${randomUUID().slice(0, 8)}`;
/** A group no worker consumes: its tasks stay queued. */
const idle = `${group}-idle`;
const lines: Array<{ message: string; fields: Record<string, unknown> | undefined }> = [];
const logger: Logger = { ...silentLogger, info: (message, fields) => void lines.push({ message, fields }), warn: (message, fields) => void lines.push({ message, fields }) };

let browser: Browser;
let server: Server;
let client: Client;
let http: HttpServer;
let url = '';

beforeAll(async () => {
  browser = await launchChromium();
  server = new Server({ broker: new RedisBroker({ prefix: ns.prefix, logger: silentLogger }), backend: new RedisBackend({ prefix: ns.prefix, logger: silentLogger }), logger: silentLogger });
  server.add(group, 'add', (a: number, b: number) => a + b);
  server.add(group, 'wait', (ctl: TaskCtl) => new Promise((_r, reject) => ctl.signal.addEventListener('abort', () => reject(ctl.signal.reason as Error))), { ctl: true });
  await server.run(group, 2);
  client = server.client();
  const handler = dashboard({ client, auth: { token: TOKEN }, logger });
  http = createServer((req, res) => handler(req, res));
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(http.address() as AddressInfo).port}/`;
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await new Promise((r) => http?.close(r));
  await server?.shutdown(2000);
  await ns.sweep();
  expect(await ns.keys()).toEqual([]);
  await ns.quit();
});

/**
 * A signed-in page whose dialogs (confirm, prompt) are answered from a queue — `false` dismisses,
 * `true` accepts, a string is typed into a prompt — and which counts its action POSTs.
 */
async function page(): Promise<{ page: Page; answer: (a: boolean | string) => void; asked: string[]; posts: () => number }> {
  const p = await signIn(browser, url, TOKEN);
  const answers: Array<boolean | string> = [];
  const asked: string[] = [];
  let posts = 0;
  p.on('dialog', (d) => {
    asked.push(d.message());
    const a = answers.shift() ?? false;
    void (a === false ? d.dismiss() : d.accept(typeof a === 'string' ? a : undefined));
  });
  p.on('request', (r) => void (r.method() === 'POST' && r.url().includes('/api/') && posts++));
  return { page: p, answer: (a) => void answers.push(a), asked, posts: () => posts };
}

const flash = (p: Page): Promise<string> => p.locator('#flash').innerText();

async function untilStatus(id: string, status: string): Promise<void> {
  await expect.poll(async () => (await client.getStatus(id))?.status, { timeout: 30_000 }).toBe(status);
}

describe('dashboard actions in a browser, on Redis', () => {
  it('aborts a running task and a queued one (after a confirmation; dismissed, nothing is sent)', async () => {
    const running = await client.send(group, 'wait');
    await untilStatus(running, 'running');
    const { page: p, answer, asked, posts } = await page();
    await p.goto(`${url}#/task?id=${running}`);
    await p.waitForSelector('[data-fact="status"] .s-running');
    answer(false);
    await p.click('button[data-action="abort"]');
    await expect.poll(() => asked.length).toBe(1);
    expect(asked[0]).toBe(`Abort task ${running}?`);
    expect(posts()).toBe(0);
    expect((await client.getStatus(running))?.status).toBe('running');
    answer(true);
    await p.click('button[data-action="abort"]');
    await expect.poll(() => flash(p)).toContain(`${running} aborted`);
    expect((await client.getResult(running, 30_000)).status).toBe('aborted');
    await p.waitForSelector('[data-fact="status"] .s-aborted', { timeout: 30_000 });
    expect(await p.locator('button[data-action="abort"]').count()).toBe(0);

    const queued = await client.send(idle, 'add', 1, 2);
    await p.goto(`${url}#/task?id=${queued}`);
    await p.waitForSelector('[data-fact="status"] .s-sent');
    answer(true);
    await p.click('button[data-action="abort"]');
    await expect.poll(() => flash(p)).toContain(`${queued} aborted`);
    await untilStatus(queued, 'aborted');
    await p.waitForSelector('[data-fact="status"] .s-aborted', { timeout: 30_000 });
    await p.close();
    expect(lines.filter((l) => l.message === 'dashboard action' && l.fields?.action === 'abort').map((l) => [l.fields?.id, l.fields?.outcome])).toEqual([
      [running, `${running} aborted`],
      [queued, `${queued} aborted`],
    ]);
  }, 120_000);

  it('purges a group only once its name is typed (cancelled or mistyped: nothing is removed)', async () => {
    await client.ops.purge(idle); // the aborted task's message
    await Promise.all([1, 2, 3].map((i) => client.send(idle, 'add', i, i)));
    await client.with({ runAfter: 600_000 }).send(idle, 'add', 9, 9);
    const { page: p, answer, asked, posts } = await page();
    await p.waitForSelector(`tr[data-group="${idle}"]`);
    const cell = (col: string): Promise<string> => p.locator(`tr[data-group="${idle}"] td[data-col="${col}"]`).innerText();
    await expect.poll(() => cell('ready'), { timeout: 30_000 }).toBe('3');
    const purge = `tr[data-group="${idle}"] button[data-action="purge"]`;

    answer(false);
    await p.click(purge);
    await expect.poll(() => asked.length).toBe(1);
    expect(asked[0]).toContain(`Type the group name to confirm`);
    expect(posts()).toBe(0);

    answer(`${idle}-typo`);
    await p.click(purge);
    await expect.poll(() => flash(p)).toContain('ERR_DASHBOARD_REQUEST: purge deletes every queued');
    expect(await client.ops.counts(idle)).toMatchObject({ ready: 3, delayed: 1 });

    answer(idle);
    await p.click(purge);
    await expect.poll(() => flash(p)).toBe(`${idle} purged (3 ready, 1 delayed, 0 dead removed)`);
    expect(await client.ops.counts(idle)).toMatchObject({ ready: 0, delayed: 0, dead: 0 });
    await expect.poll(() => cell('ready'), { timeout: 30_000 }).toBe('0');
    expect(await cell('delayed')).toBe('0');
    await p.close();
    expect(lines.filter((l) => l.message === 'dashboard action' && l.fields?.action === 'purge').map((l) => String(l.fields?.outcome).startsWith('failed:'))).toEqual([true, false]);
  }, 120_000);

  it('deletes dead letters: one, the selected ones, then all', async () => {
    // Five dead letters: `add` without its arguments cannot be decoded into a call.
    const tasks = await Promise.all([1, 2, 3, 4, 5].map(() => client.send(group, 'add')));
    await expect.poll(async () => (await client.deadLetters(group)).length, { timeout: 30_000 }).toBe(5);
    const { page: p, answer, asked, posts } = await page();
    await p.goto(`${url}#/dead?group=${group}`);
    const rows = p.locator('#dead tbody tr');
    await expect.poll(() => rows.count(), { timeout: 30_000 }).toBe(5);
    const shown = async (): Promise<string[]> => (await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-task') ?? ''))).sort();
    expect(await shown()).toEqual([...tasks].sort());

    // One: dismissed first, then confirmed.
    const one = tasks[0] as string;
    answer(false);
    await p.click(`#dead tr[data-task="${one}"] button[data-action="delete"]`);
    await expect.poll(() => asked.length).toBe(1);
    expect(asked[0]).toMatch(/^Delete dead letter .+\?$/);
    expect(posts()).toBe(0);
    answer(true);
    await p.click(`#dead tr[data-task="${one}"] button[data-action="delete"]`);
    await expect.poll(() => flash(p)).toBe(`1 dead letter(s) deleted from ${group}`);
    await expect.poll(shown).toEqual(tasks.slice(1).sort());

    // Two selected.
    const picked = [tasks[1], tasks[3]] as string[];
    for (const id of picked) await p.check(`#dead tr[data-task="${id}"] input[type=checkbox]`);
    answer(true);
    await p.click('button[data-action="delete-selected"]');
    await expect.poll(() => flash(p)).toBe(`2 dead letter(s) deleted from ${group}`);
    await expect.poll(shown).toEqual([tasks[2], tasks[4]].sort());
    expect(await client.deadLetters(group)).toHaveLength(2);

    // All the rest.
    answer(true);
    await p.click('button[data-action="delete-all"]');
    await expect.poll(() => flash(p)).toBe(`2 dead letter(s) deleted from ${group}`);
    await p.waitForSelector('#dead-list p.muted');
    expect(await p.locator('#dead-list').innerText()).toContain('No dead letters.');
    expect(await client.deadLetters(group)).toEqual([]);
    expect(asked.slice(1)).toEqual([asked[0], 'Delete the selected dead letters?', `Delete every dead letter of ${group}?`]);
    await p.close();
    expect(lines.filter((l) => l.message === 'dashboard action' && l.fields?.action === 'dead/delete').map((l) => l.fields?.outcome)).toEqual([
      `1 dead letter(s) deleted from ${group}`,
      `2 dead letter(s) deleted from ${group}`,
      `2 dead letter(s) deleted from ${group}`,
    ]);
  }, 120_000);

  it('Sign out ends the session on the server: a copy of the cookie taken before no longer works', async () => {
    const { page: p } = await page();
    const [session] = (await p.context().cookies()).filter((c) => c.name === 'tasuki_dashboard');
    expect(session?.httpOnly).toBe(true);
    const copied = { cookie: `tasuki_dashboard=${session?.value ?? ''}` };
    expect((await fetch(`${url}api/info`, { headers: copied })).status).toBe(200);
    await p.click('#logout button');
    await p.waitForSelector('#token');
    expect((await p.context().cookies()).filter((c) => c.name === 'tasuki_dashboard')).toEqual([]);
    expect((await fetch(`${url}api/info`, { headers: copied })).status).toBe(401);
    expect((await p.goto(url))?.status()).toBe(401);
    await p.close();
  }, 60_000);
});
