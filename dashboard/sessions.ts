/**
 * Sign-in sessions of the token login, kept in the handler: a random id per sign-in (the cookie's
 * value), ended by Sign out, by {@link SESSION_IDLE_MS} without a request, or by the process
 * ending. So a copied cookie stops working once its session is signed out. No timers: expired
 * sessions are dropped when met and whenever one is opened.
 */
import { createHash, randomBytes } from 'node:crypto';

/** A session unused for this long (12 hours) has ended. */
export const SESSION_IDLE_MS = 12 * 60 * 60 * 1000;
/** Most sessions kept at once; past it, the least recently used one ends. */
export const MAX_SESSIONS = 10_000;

// Kept by a digest of the id: a lookup's timing says nothing about the ids themselves.
const key = (id: string): string => createHash('sha256').update(id, 'utf8').digest('base64url');

/** The live sessions, least recently used first. */
export class Sessions {
  /** Digest of the id → when it was last used (epoch ms); Map order is least recently used first. */
  private readonly live = new Map<string, number>();

  /** @param idleMs how long an unused session lasts @param max most sessions kept */
  constructor(
    private readonly idleMs = SESSION_IDLE_MS,
    private readonly max = MAX_SESSIONS,
  ) {}

  /** How many sessions are live (expired ones not yet met included). */
  get size(): number {
    return this.live.size;
  }

  /** Opens a session; returns its id (256 random bits, base64url). */
  open(now = Date.now()): string {
    for (const [k, at] of this.live) {
      if (now - at < this.idleMs) break;
      this.live.delete(k);
    }
    while (this.live.size >= this.max) this.live.delete(this.live.keys().next().value as string);
    const id = randomBytes(32).toString('base64url');
    this.live.set(key(id), now);
    return id;
  }

  /** Whether `id` is a live session; if so, it counts as used now. */
  touch(id: string, now = Date.now()): boolean {
    const k = key(id);
    const at = this.live.get(k);
    if (at === undefined) return false;
    this.live.delete(k);
    if (now - at >= this.idleMs) return false;
    this.live.set(k, now);
    return true;
  }

  /** Ends session `id`; whether it was live. */
  close(id: string): boolean {
    return this.live.delete(key(id));
  }
}
