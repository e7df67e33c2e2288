/**
 * HTTP plumbing of the dashboard: security headers, JSON answers, typed errors mapped to statuses,
 * and bounded JSON bodies.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { TasukiError } from '../src/errors.js';
import type { WireFailure } from './wire.js';

/** A refusal or failure with its HTTP status and a stable code. */
export class DashboardError extends Error {
  /** Stable code (`ERR_DASHBOARD_AUTH`, `ERR_DASHBOARD_CSRF`, `ERR_DASHBOARD_READ_ONLY`, `ERR_DASHBOARD_REQUEST`, `ERR_DASHBOARD_NOT_FOUND`). */
  readonly code: string;
  /** HTTP status. */
  readonly status: number;
  /** @param status HTTP status @param code stable code @param message what happened */
  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = 'DashboardError';
    this.status = status;
    this.code = code;
  }
}

/** Largest accepted request body. */
const MAX_BODY = 256 * 1024;

/** Content-Security-Policy of every answer: own scripts and styles only, no framing. */
export const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/** Sets the headers every answer carries. */
export function securityHeaders(res: ServerResponse): void {
  res.setHeader('Content-Security-Policy', CSP);
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('X-Frame-Options', 'DENY');
  // Not no-referrer: with it, a browser sends `Origin: null` on form posts, which the same-origin check refuses.
  res.setHeader('Referrer-Policy', 'same-origin');
  res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
}

/** Sends a JSON answer (never cached). */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('Content-Length', Buffer.byteLength(text));
  res.end(text);
}

/** HTTP status of a tasuki error code. */
function statusOf(code: string): number {
  if (code === 'ERR_UNSUPPORTED') return 501;
  if (code === 'ERR_NOT_FOUND') return 404;
  if (code === 'ERR_INVALID_OPTION' || code === 'ERR_INVALID_NAME' || code === 'ERR_DECODE' || code === 'ERR_NOT_SERIALIZABLE') return 400;
  if (code === 'ERR_CONNECTION' || code === 'ERR_DATABASE') return 503;
  return 500;
}

/** The failure answer of an error: its code and message (tasuki errors), or a generic one. */
export function failureOf(err: unknown): { status: number; body: WireFailure } {
  if (err instanceof DashboardError) return { status: err.status, body: { error: { code: err.code, message: err.message } } };
  if (err instanceof TasukiError) return { status: statusOf(err.code), body: { error: { code: err.code, message: err.message } } };
  return { status: 500, body: { error: { code: 'ERR_INTERNAL', message: 'internal error (see the server log)' } } };
}

/** Reads a JSON object body of at most 256 KiB ({@link DashboardError} 400/413/415 otherwise). */
export async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/json') throw new DashboardError(415, 'ERR_DASHBOARD_REQUEST', 'actions take a JSON body (Content-Type: application/json)');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new DashboardError(413, 'ERR_DASHBOARD_REQUEST', 'request body too large');
    chunks.push(chunk);
  }
  let value: unknown;
  try {
    value = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
  } catch {
    throw new DashboardError(400, 'ERR_DASHBOARD_REQUEST', 'request body is not JSON');
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new DashboardError(400, 'ERR_DASHBOARD_REQUEST', 'request body must be a JSON object');
  return value as Record<string, unknown>;
}

/** Reads a form body (`application/x-www-form-urlencoded`, at most 16 KiB). */
export async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > 16 * 1024) throw new DashboardError(413, 'ERR_DASHBOARD_REQUEST', 'request body too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

/** A required non-empty string field of a body or query. */
export function str(v: unknown, what: string): string {
  if (typeof v !== 'string' || v === '') throw new DashboardError(400, 'ERR_DASHBOARD_REQUEST', `${what} is required`);
  return v;
}

/** An optional list of strings (`ids`), at most 1000. */
export function strList(v: unknown, what: string): string[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.length > 1000 || !v.every((x) => typeof x === 'string' && x !== '')) {
    throw new DashboardError(400, 'ERR_DASHBOARD_REQUEST', `${what} must be a list of at most 1000 non-empty strings`);
  }
  return v as string[];
}
