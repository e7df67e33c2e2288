/**
 * What the dashboard's handler and API tests share: a token, an audit-log capturing logger, the
 * request headers of a reader and of an action, a handler served on a free loopback port, and a
 * server with the `shop` tasks (add, echo, boom, wait-until-aborted) the tests act on.
 */
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server } from '../../src/server.js';
import type { TaskCtl } from '../../src/ctl.js';
import { silentLogger, type Logger } from '../../src/logger.js';
import type { DashboardHandler } from '../../dashboard/index.js';

/** The token the test dashboards accept. */
export const TOKEN = 'a-long-test-token-0123456789';

/** Lines the {@link auditLogger} received (info and warn). */
export const lines: Array<{ message: string; fields: Record<string, unknown> | undefined }> = [];

/** A logger keeping info and warn lines in {@link lines}. */
export const auditLogger: Logger = { ...silentLogger, info: (message, fields) => void lines.push({ message, fields }), warn: (message, fields) => void lines.push({ message, fields }) };

/** Headers of an authorised read. */
export const bearer = { authorization: `Bearer ${TOKEN}` };

/** Headers of an authorised action (JSON body, the dashboard's own header). */
export const action = { ...bearer, 'content-type': 'application/json', 'x-tasuki-dashboard': '1' };

const servers: HttpServer[] = [];

/** Serves `handler` on a free port of `host`; returns its base URL. Closed by {@link closeAll}. */
export async function serve(handler: DashboardHandler, host = '127.0.0.1'): Promise<string> {
  const s = createServer((req, res) => handler(req, res));
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, host, r));
  return `http://${host}:${(s.address() as AddressInfo).port}`;
}

/** Has {@link closeAll} close `s` too (a server a test made itself). */
export function track(s: HttpServer): void {
  servers.push(s);
}

/** Closes every server {@link serve} started or {@link track} was given. */
export async function closeAll(): Promise<void> {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
}

/** POSTs `body` as JSON to `path` under `base`. */
export function post(base: string, path: string, body: unknown, headers: Record<string, string> = action): Promise<Response> {
  return fetch(`${base}/${path}`, { method: 'POST', headers, body: JSON.stringify(body) });
}

/** An in-memory server running group `shop` (concurrency 4) with the tasks add, echo, boom and wait. */
export async function shopServer(): Promise<Server> {
  const server = new Server({ logger: silentLogger });
  server.add('shop', 'add', (a: number, b: number) => a + b);
  server.add('shop', 'echo', (v: unknown) => v);
  server.add('shop', 'boom', (why: string) => {
    throw new Error(`boom: ${why}`);
  });
  server.add('shop', 'wait', (ctl: TaskCtl) => new Promise((_r, reject) => ctl.signal.addEventListener('abort', () => reject(ctl.signal.reason as Error))), { ctl: true });
  await server.run('shop', 4);
  return server;
}
