/**
 * Talking to the dashboard's API: GETs with the session (cookie or basic auth, sent by the
 * browser), actions as POSTs with a JSON body and the dashboard's own header.
 */
import type { WireActionResult, WireFailure } from '../wire.js';

/** A refused or failed API call. */
export class ApiError extends Error {
  /** Stable code from the server (`ERR_UNSUPPORTED`, `ERR_DASHBOARD_AUTH`…). */
  readonly code: string;
  /** HTTP status. */
  readonly status: number;
  /** @param status HTTP status @param code code @param message message */
  constructor(status: number, code: string, message: string) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

async function parse<T>(res: Response): Promise<T> {
  const body = (await res.json().catch(() => null)) as T | WireFailure | null;
  if (res.ok) return body as T;
  const failure = (body as WireFailure | null)?.error;
  if (res.status === 401) {
    // The session ended: the page reloads into the sign-in form.
    location.reload();
  }
  throw new ApiError(res.status, failure?.code ?? 'ERR_HTTP', failure?.message ?? `HTTP ${res.status}`);
}

/** GET `api/<path>` with query parameters. */
export async function get<T>(path: string, params: Record<string, string | number | undefined | string[]> = {}): Promise<T> {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === '') continue;
    if (Array.isArray(v)) for (const x of v) q.append(k, x);
    else q.set(k, String(v));
  }
  const s = q.toString();
  return parse<T>(await fetch(`api/${path}${s === '' ? '' : `?${s}`}`, { credentials: 'same-origin', headers: { accept: 'application/json' } }));
}

/** POST an action. */
export async function act(path: string, body: Record<string, unknown>): Promise<WireActionResult> {
  return parse<WireActionResult>(
    await fetch(`api/${path}`, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json', 'x-tasuki-dashboard': '1' },
      body: JSON.stringify(body),
    }),
  );
}
