/**
 * `tasuki/dashboard`: a web dashboard as a Node `http` request handler — mount it in your own
 * server (plain `http`, Express, Fastify's middie…) or run `tasuki dashboard`. It shows and
 * steers what `client.ops` does: groups with counts and hourly rates, workers, task lists (paged
 * on the server, filtered, searched by id prefix), task detail, dead letters, and the actions
 * (retry, abort, redrive / delete dead letters, pause, resume, purge). Every request needs the
 * credential (sign-in sessions are kept here: `sessions.ts`); actions are POSTs checked against
 * cross-site use and logged (who, what). Behind a reverse proxy, `trustProxy` (`proxy.ts`) says
 * whose forwarded headers to believe.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { consoleLogger } from '../src/logger.js';
import { toError } from '../src/errors.js';
import { isAction, runAction, audit } from './actions.js';
import { assets } from './assets.js';
import { Authenticator, checkSameOrigin, FailureLimit, hasSession, presentsCredential, type Principal } from './auth.js';
import { DashboardError, failureOf, readForm, readJson, securityHeaders, sendJson } from './http.js';
import { loginPage } from './login.js';
import { resolveOptions, type DashboardOptions } from './options.js';
import type { ClientView } from './proxy.js';
import { Reads } from './reads.js';

export { DashboardError } from './http.js';
export { isLoopback, MIN_PASSWORD_LENGTH, MIN_TOKEN_LENGTH, type DashboardAuth, type DashboardOptions } from './options.js';
export type { TrustProxy } from './proxy.js';
export type * from './wire.js';

/** A Node request handler; `next` (Express-style) is called for paths that are not the dashboard's. */
export type DashboardHandler = (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void) => void;

/**
 * Makes the dashboard's request handler (see the module comment and README "Dashboard").
 * Throws `InvalidOptionError` for missing or weak credentials.
 */
export function dashboard(options: DashboardOptions): DashboardHandler {
  const o = resolveOptions(options, consoleLogger('info'));
  const auth = new Authenticator(o.auth);
  const reads = new Reads(o.client, o.readOnly);
  const limit = new FailureLimit();
  const proxy = o.proxy;
  const log = o.logger;

  async function handle(req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void): Promise<void> {
    const raw = req.url ?? '/';
    const url = new URL(raw, 'http://dashboard.invalid');
    let path = url.pathname;
    if (o.basePath !== '' && (path === o.basePath || path.startsWith(`${o.basePath}/`))) path = path.slice(o.basePath.length);
    else if (o.basePath !== '') return notFound(res, next);
    // The path the user's browser sees (Express strips its mount path from req.url, not from originalUrl).
    const full = new URL((req as IncomingMessage & { originalUrl?: string }).originalUrl ?? raw, 'http://dashboard.invalid').pathname;
    const mount = full.endsWith(path) ? full.slice(0, full.length - path.length) : o.basePath;
    if (path === '' || (path === '/' && !full.endsWith('/'))) {
      res.statusCode = 308;
      // A path, never `//host` (which a browser would read as another site).
      res.setHeader('Location', `/${full.replace(/^\/+/, '')}/${url.search}`);
      res.end();
      return;
    }
    securityHeaders(res);
    const method = req.method ?? 'GET';
    const route = path.slice(1);
    const cookiePath = mount === '' ? '/' : mount;
    const client = proxy.view(req);
    const peer = client.address;

    if (route === 'style.css' || (route === 'login' && method !== 'POST')) {
      if (route === 'login') return sendHtml(res, 200, loginPage(auth.method, false));
      return sendAsset(res, route);
    }
    if (method === 'POST' && (route === 'login' || route === 'logout')) {
      checkSameOrigin(req, client.host, false);
      if (route === 'logout') {
        if (auth.endSession(req)) log.info('dashboard logout', { who: `token@${peer}` });
        res.setHeader('Set-Cookie', auth.clearCookie(cookiePath));
        return redirect(res, 'login');
      }
      if (limit.blocked(peer)) throw tooMany();
      const token = (await readForm(req)).get('token') ?? '';
      if (auth.tokenMatches(token)) {
        log.info('dashboard login', { who: `token@${peer}` });
        res.setHeader('Set-Cookie', auth.sessionCookie(client, cookiePath));
        return redirect(res, './');
      }
      limit.fail(peer);
      log.warn('dashboard login refused', { who: peer });
      return sendHtml(res, 401, loginPage(auth.method, true));
    }

    const credential = presentsCredential(req);
    if (credential && limit.blocked(peer)) throw tooMany();
    const who = auth.identify(req, client);
    if (who === null) {
      if (credential) limit.fail(peer);
      if (hasSession(req)) res.setHeader('Set-Cookie', auth.clearCookie(cookiePath));
      return refuse(res, peer, route, method);
    }

    if (method === 'GET' || method === 'HEAD') {
      if (route === '') return sendAsset(res, 'index.html');
      if (route === 'app.js') return sendAsset(res, route);
      if (route.startsWith('api/')) {
        const body = await reads.answer(route.slice(4), url.searchParams, who);
        if (body !== undefined) return sendJson(res, 200, body);
      }
      return notFound(res, next);
    }
    if (method === 'POST' && route.startsWith('api/') && isAction(route.slice(4))) {
      return act(req, res, client, route.slice(4) as Parameters<typeof runAction>[1], who);
    }
    if (route.startsWith('api/')) throw new DashboardError(405, 'ERR_DASHBOARD_REQUEST', `${method} is not allowed here`);
    return notFound(res, next);
  }

  async function act(req: IncomingMessage, res: ServerResponse, client: ClientView, name: Parameters<typeof runAction>[1], who: Principal): Promise<void> {
    try {
      checkSameOrigin(req, client.host, true);
      if (o.readOnly) throw new DashboardError(403, 'ERR_DASHBOARD_READ_ONLY', 'the dashboard is read-only: actions are off');
    } catch (err) {
      log.warn('dashboard action refused', { who: who.who, action: name, reason: (err as Error).message });
      throw err;
    }
    const body = await readJson(req);
    try {
      const result = await runAction(o.client, name, body);
      audit(log, who.who, name, body, result.message);
      sendJson(res, 200, result);
    } catch (err) {
      audit(log, who.who, name, body, `failed: ${(err as Error).message}`);
      throw err;
    }
  }

  function refuse(res: ServerResponse, peer: string, route: string, method: string): void {
    if (method === 'POST') log.warn('dashboard request refused: no valid credential', { who: peer, path: route });
    auth.challenge(res);
    const status = auth.method === 'none' ? 403 : 401;
    if (route.startsWith('api/')) {
      sendJson(res, status, { error: { code: 'ERR_DASHBOARD_AUTH', message: auth.method === 'none' ? 'this dashboard answers loopback requests only' : 'a valid credential is required' } });
    } else {
      sendHtml(res, status, loginPage(auth.method, false));
    }
  }

  return (req, res, next) => {
    handle(req, res, next).catch((err: unknown) => {
      const { status, body } = failureOf(err);
      if (status >= 500 && status !== 501) log.error('dashboard request failed', { path: req.url, error: toError(err) });
      if (res.headersSent) {
        res.destroy();
        return;
      }
      sendJson(res, status, body);
    });
  };
}

function tooMany(): DashboardError {
  return new DashboardError(429, 'ERR_DASHBOARD_AUTH', 'too many failed credentials from this address: wait a minute');
}

function sendHtml(res: ServerResponse, status: number, html: string): void {
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.end(html);
}

async function sendAsset(res: ServerResponse, name: string): Promise<void> {
  const file = (await assets()).get(name);
  if (file === undefined) throw new DashboardError(404, 'ERR_DASHBOARD_NOT_FOUND', `no ${name}`);
  res.statusCode = 200;
  res.setHeader('Content-Type', file.type);
  res.setHeader('Cache-Control', name === 'index.html' ? 'no-store' : 'no-cache');
  res.setHeader('Content-Length', file.body.byteLength);
  res.end(file.body);
}

function redirect(res: ServerResponse, to: string): void {
  res.statusCode = 303;
  res.setHeader('Location', to);
  res.end();
}

function notFound(res: ServerResponse, next: ((err?: unknown) => void) | undefined): void {
  if (next !== undefined) return next();
  sendJson(res, 404, { error: { code: 'ERR_DASHBOARD_NOT_FOUND', message: 'not found' } });
}
