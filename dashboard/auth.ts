/**
 * Who may use the dashboard: the token (bearer header or session cookie set by the login form),
 * HTTP basic auth, or — loopback only — nobody in particular; and the cross-site request checks
 * of every POST (same origin, the dashboard's own header on actions).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { DashboardError } from './http.js';
import { isLoopback, type DashboardAuth } from './options.js';
import type { ClientView } from './proxy.js';
import { Sessions } from './sessions.js';

/** Who made a request, as the audit log names them. */
export interface Principal {
  /** `token`, `basic:<user>` or `anonymous`, with the client address. */
  who: string;
  /** How they were authenticated. */
  method: 'token' | 'basic' | 'none';
}

/** Header every action must carry (a cross-site form cannot set it; a cross-site fetch needs a preflight that is never granted). */
export const ACTION_HEADER = 'x-tasuki-dashboard';
/** Name of the session cookie of the token login. */
export const COOKIE = 'tasuki_dashboard';

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();
/** Constant-time equality of two strings. */
export function sameSecret(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b));
}

/** Reads one cookie of a request. */
function cookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** Host header without port. */
function hostName(host: string): string {
  if (host.startsWith('[')) return host.slice(0, host.indexOf(']') + 1);
  const colon = host.lastIndexOf(':');
  return colon > 0 ? host.slice(0, colon) : host;
}

/** Checks the credential of each request (see the module comment). */
export class Authenticator {
  /** The sessions of the sign-in form (kept in this process: they end with it). */
  readonly sessions: Sessions;

  /** @param auth the configured credential @param sessions where sign-ins are kept */
  constructor(
    private readonly auth: DashboardAuth,
    sessions = new Sessions(),
  ) {
    this.sessions = sessions;
  }

  /** The method configured. */
  get method(): Principal['method'] {
    return 'token' in this.auth ? 'token' : 'basic' in this.auth ? 'basic' : 'none';
  }

  /** The principal of a request from `client`, or null when it carries no valid credential. */
  identify(req: IncomingMessage, client: ClientView): Principal | null {
    const from = client.address;
    const header = req.headers.authorization ?? '';
    if ('none' in this.auth) {
      // A loopback listener and a loopback Host: a remote client, or a page of another site whose
      // name was re-pointed at 127.0.0.1 (DNS rebinding), gets nothing.
      const host = hostName(req.headers.host ?? '');
      if (!isLoopback(req.socket.localAddress ?? '') || !isLoopback(host)) return null;
      return { who: `anonymous@${from}`, method: 'none' };
    }
    if ('token' in this.auth) {
      const bearer = /^Bearer\s+(.+)$/i.exec(header)?.[1];
      if (bearer !== undefined && sameSecret(bearer.trim(), this.auth.token)) return { who: `token@${from}`, method: 'token' };
      const c = cookie(req, COOKIE);
      if (c !== undefined && this.sessions.touch(c)) return { who: `token@${from}`, method: 'token' };
      return null;
    }
    const basic = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(header)?.[1];
    if (basic === undefined) return null;
    const text = Buffer.from(basic, 'base64').toString('utf8');
    const colon = text.indexOf(':');
    if (colon < 0) return null;
    const user = text.slice(0, colon);
    const okUser = sameSecret(user, this.auth.basic.username);
    const okPass = sameSecret(text.slice(colon + 1), this.auth.basic.password);
    return okUser && okPass ? { who: `basic:${user}@${from}`, method: 'basic' } : null;
  }

  /** Whether a submitted login token is right. */
  tokenMatches(candidate: string): boolean {
    return 'token' in this.auth && sameSecret(candidate, this.auth.token);
  }

  /** Opens a session (token login); its `Set-Cookie` value, scoped to the dashboard's path, `Secure` when the client came over HTTPS. */
  sessionCookie(client: ClientView, path: string): string {
    const secure = client.https ? '; Secure' : '';
    return `${COOKIE}=${this.sessions.open()}; Path=${path}; HttpOnly; SameSite=Strict${secure}`;
  }

  /** Ends the session whose cookie `req` carries (Sign out); whether there was one. */
  endSession(req: IncomingMessage): boolean {
    const c = cookie(req, COOKIE);
    return c !== undefined && this.sessions.close(c);
  }

  /** The `Set-Cookie` value that ends a session. */
  clearCookie(path: string): string {
    return `${COOKIE}=; Path=${path}; HttpOnly; SameSite=Strict; Max-Age=0`;
  }

  /** Answers 401: basic auth asks the browser for the credential; the others say what is missing. */
  challenge(res: ServerResponse): void {
    if ('basic' in this.auth) res.setHeader('WWW-Authenticate', 'Basic realm="tasuki dashboard", charset="UTF-8"');
    else if ('token' in this.auth) res.setHeader('WWW-Authenticate', 'Bearer realm="tasuki dashboard"');
  }
}

/**
 * Refuses a POST that may come from another site ({@link DashboardError} 403): an `Origin` (or a
 * `Sec-Fetch-Site`) naming another site than `host` (the `Host` header, or the trusted proxy's
 * `X-Forwarded-Host`); for actions (`action: true`) also a missing {@link ACTION_HEADER}.
 * Scripts without a browser send neither `Origin` nor `Sec-Fetch-Site`.
 */
export function checkSameOrigin(req: IncomingMessage, host: string, action: boolean): void {
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin') throw new DashboardError(403, 'ERR_DASHBOARD_CSRF', `cross-site request refused (Sec-Fetch-Site: ${site})`);
  const origin = req.headers.origin;
  if (origin !== undefined) {
    let from: string;
    try {
      from = new URL(origin).host;
    } catch {
      throw new DashboardError(403, 'ERR_DASHBOARD_CSRF', 'cross-site request refused (unreadable Origin)');
    }
    if (from !== host.toLowerCase()) throw new DashboardError(403, 'ERR_DASHBOARD_CSRF', 'cross-site request refused (Origin is another site)');
  }
  if (action && req.headers[ACTION_HEADER] !== '1') throw new DashboardError(403, 'ERR_DASHBOARD_CSRF', `actions need the ${ACTION_HEADER}: 1 header`);
}

/** Failed credentials allowed per client address and minute; more are answered 429 until the minute ends. */
export const MAX_FAILURES_PER_MINUTE = 10;

/** Counts failed credentials per client address (a brake on guessing; no timers, old entries dropped on use). */
export class FailureLimit {
  private readonly failures = new Map<string, { count: number; since: number }>();

  /** Whether `address` has used up its failures for the current minute. */
  blocked(address: string, now = Date.now()): boolean {
    const f = this.failures.get(address);
    if (f === undefined) return false;
    if (now - f.since >= 60_000) {
      this.failures.delete(address);
      return false;
    }
    return f.count >= MAX_FAILURES_PER_MINUTE;
  }

  /** Counts a failed credential from `address`. */
  fail(address: string, now = Date.now()): void {
    const f = this.failures.get(address);
    if (f === undefined || now - f.since >= 60_000) this.failures.set(address, { count: 1, since: now });
    else f.count++;
    if (this.failures.size > 10_000) {
      for (const [k, v] of this.failures) if (now - v.since >= 60_000) this.failures.delete(k);
      if (this.failures.size > 10_000) this.failures.delete(this.failures.keys().next().value as string);
    }
  }
}

/**
 * Whether a request carries an `Authorization` header: only those (and sign-in posts) count as
 * failures. A session id cannot be guessed; a stale one (signed out, idle too long, or the process
 * restarted) is cleared.
 */
export function presentsCredential(req: IncomingMessage): boolean {
  return req.headers.authorization !== undefined;
}

/** Whether a request carries a session cookie. */
export function hasSession(req: IncomingMessage): boolean {
  return cookie(req, COOKIE) !== undefined;
}
