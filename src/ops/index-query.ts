/**
 * Shared rules of task index queries: the order (newest update first, ties by id), the cursor and
 * the filter, so that every backend's index pages the same way.
 */
import type { IndexQuery } from '../backend.js';
import { DecodeError } from '../errors.js';
import type { TaskState } from '../state.js';

/** A position in the order: the last item of a page. */
export interface CursorPosition {
  /** Its `updatedAt`. */
  at: number;
  /** Its id. */
  id: string;
}

/** Newest update first; equal times by id, descending. */
export function compareNewestFirst(a: { updatedAt: number; id: string }, b: { updatedAt: number; id: string }): number {
  if (a.updatedAt !== b.updatedAt) return b.updatedAt - a.updatedAt;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

/** The cursor after `s`: its time and id, base64url. */
export function encodeCursor(s: { updatedAt: number; id: string }): string {
  return Buffer.from(`${s.updatedAt}:${s.id}`, 'utf8').toString('base64url');
}

/** Reads a cursor made by {@link encodeCursor}; {@link DecodeError} when it is not one. */
export function decodeCursor(cursor: string): CursorPosition {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const colon = text.indexOf(':');
  const at = Number(text.slice(0, colon));
  if (colon <= 0 || !Number.isFinite(at)) throw new DecodeError(`not a task list cursor: ${JSON.stringify(cursor.slice(0, 80))}`);
  return { at, id: text.slice(colon + 1) };
}

/** True when `pos` comes strictly after `cursor` in the order (an older entry). */
export function isAfter(pos: { updatedAt: number; id: string }, cursor: CursorPosition): boolean {
  return compareNewestFirst({ updatedAt: cursor.at, id: cursor.id }, pos) < 0;
}

/** Whether a state answers the query (group, status, name, time window, after the cursor). */
export function matches(s: TaskState, q: IndexQuery, after: CursorPosition | undefined): boolean {
  if (s.group !== q.group) return false;
  if (q.status !== undefined && s.status !== q.status) return false;
  if (q.name !== undefined && s.name !== q.name) return false;
  if (q.since !== undefined && s.updatedAt < q.since) return false;
  if (q.until !== undefined && s.updatedAt >= q.until) return false;
  return after === undefined || isAfter(s, after);
}
