/**
 * Options of the dashboard handler, their checks, and the loopback rule of `auth: { none: true }`.
 */
import { isIP } from 'node:net';
import type { Client } from '../src/client.js';
import { InvalidOptionError } from '../src/errors.js';
import type { Logger } from '../src/logger.js';
import { ProxyTrust, type TrustProxy } from './proxy.js';

/** Shortest accepted token: a dashboard steers production queues. */
export const MIN_TOKEN_LENGTH = 16;
/** Shortest accepted basic-auth password. */
export const MIN_PASSWORD_LENGTH = 8;

/**
 * How requests prove who they are. `token`: `Authorization: Bearer <token>`, or the login form
 * (which sets an HttpOnly, SameSite=Strict session cookie). `basic`: HTTP basic auth (the browser
 * asks). `none`: no credential — accepted only on loopback connections with a loopback `Host`.
 */
export type DashboardAuth = { token: string } | { basic: { username: string; password: string } } | { none: true };

/** Options of {@link import('./index.js').dashboard}. */
export interface DashboardOptions {
  /** The client whose `ops` the dashboard shows and steers (the caller keeps it open and closes it). */
  client: Client;
  /** The credential every request must carry (see {@link DashboardAuth}). Required. */
  auth: DashboardAuth;
  /** Hide and refuse every action (retry, abort, dead letters, pause, resume, purge). */
  readOnly?: boolean;
  /** Where actions (who, what) and refusals are logged (default: the console, `info`). */
  logger?: Logger;
  /**
   * The path the dashboard is mounted under in a plain `http` server (e.g. `/admin/tasuki`): stripped
   * from `req.url` when present. Frameworks that strip their mount path (Express's `app.use(path, …)`)
   * need none.
   */
  basePath?: string;
  /**
   * Behind a reverse proxy: believe its `X-Forwarded-For` / `-Proto` / `-Host` headers (see
   * {@link TrustProxy}; README "Dashboard"). Off by default: the headers are ignored. Not with
   * `auth: { none: true }` (a proxy on loopback would make every client look local).
   */
  trustProxy?: TrustProxy;
}

/** Checked options. */
export interface ResolvedOptions {
  client: Client;
  auth: DashboardAuth;
  readOnly: boolean;
  logger: Logger;
  basePath: string;
  /** The reader of forwarded headers (`trustProxy`). */
  proxy: ProxyTrust;
}

/** Whether `address` (an IP, `localhost`, or a `Host` header value without port) is loopback. */
export function isLoopback(address: string): boolean {
  let a = address.trim().toLowerCase();
  if (a.startsWith('[') && a.endsWith(']')) a = a.slice(1, -1);
  if (a === 'localhost' || a.endsWith('.localhost')) return true;
  if (a.startsWith('::ffff:')) a = a.slice(7);
  if (isIP(a) === 4) return a.startsWith('127.');
  if (isIP(a) === 6) return a === '::1' || a === '0:0:0:0:0:0:0:1';
  return false;
}

/** Checks the options (throws {@link InvalidOptionError}). */
export function resolveOptions(o: DashboardOptions, fallbackLogger: Logger): ResolvedOptions {
  if (o === null || typeof o !== 'object') throw new InvalidOptionError('dashboard options must be an object');
  if (o.client === undefined || typeof o.client.ops !== 'object') throw new InvalidOptionError('dashboard needs a client');
  const auth = o.auth as Partial<{ token: unknown; basic: { username?: unknown; password?: unknown }; none: unknown }> | undefined;
  if (auth === undefined || auth === null || typeof auth !== 'object') {
    throw new InvalidOptionError('dashboard needs auth: { token }, { basic: { username, password } } or, on loopback only, { none: true }');
  }
  const kinds = ['token', 'basic', 'none'].filter((k) => (auth as Record<string, unknown>)[k] !== undefined);
  if (kinds.length !== 1) throw new InvalidOptionError(`dashboard auth takes exactly one of token, basic, none (got ${kinds.join(', ') || 'none of them'})`);
  if (auth.token !== undefined && (typeof auth.token !== 'string' || auth.token.length < MIN_TOKEN_LENGTH)) {
    throw new InvalidOptionError(`dashboard token must be a string of at least ${MIN_TOKEN_LENGTH} characters`);
  }
  if (auth.basic !== undefined) {
    const { username, password } = auth.basic;
    if (typeof username !== 'string' || username === '' || username.includes(':')) throw new InvalidOptionError('basic auth username must be a non-empty string without ":"');
    if (typeof password !== 'string' || password.length < MIN_PASSWORD_LENGTH) throw new InvalidOptionError(`basic auth password must be at least ${MIN_PASSWORD_LENGTH} characters`);
  }
  if (auth.none !== undefined && auth.none !== true) throw new InvalidOptionError('auth.none must be true');
  let basePath = o.basePath ?? '';
  if (typeof basePath !== 'string' || (basePath !== '' && !basePath.startsWith('/'))) throw new InvalidOptionError('basePath must start with "/"');
  basePath = basePath.replace(/\/+$/, '');
  const proxy = new ProxyTrust(o.trustProxy);
  if (proxy.enabled && auth.none !== undefined) throw new InvalidOptionError('trustProxy cannot be combined with auth: { none: true }: behind a proxy every client would look local');
  return { client: o.client, auth: o.auth, readOnly: o.readOnly === true, logger: o.logger ?? fallbackLogger, basePath, proxy };
}
