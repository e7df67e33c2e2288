/**
 * The PostgreSQL broker (`tasuki/brokers/postgres`). Messages are rows of `<schema>.messages` with a
 * `run_at` column (delays live in the database); fetch claims ready rows with `FOR UPDATE SKIP
 * LOCKED` into a lease (token + deadline in `run_at`, so an expired lease is claimable again); dead
 * letters have their own table; retry is one atomic UPDATE. Idle fetches wait on LISTEN/NOTIFY (one
 * listening connection per broker instance) and on a timer for the next due delay or lease, with a
 * slow poll only as a backstop. Publishing can join the caller's open transaction (`tx`): the
 * message exists, and its NOTIFY is sent, only when that transaction commits.
 */
import { randomUUID } from 'node:crypto';
import type { Broker, DeadLetter, DeadLetterReason, Delivery, FetchOptions, PublishOptions, QueueCounts } from '../src/broker.js';
import { ClosedError, InvalidOptionError } from '../src/errors.js';
import { assertName } from '../src/names.js';
import { PostgresBase } from '../postgres/base.js';
import { isQueryable, run, type PostgresCommonOptions, type Queryable } from '../postgres/connection.js';
import { Listener } from '../postgres/listener.js';
import * as SQL from './postgres-sql.js';
import { WaitHub } from './postgres-wait.js';

export type { PostgresConnection } from '../postgres/connection.js';

/** Options of {@link PostgresBroker}. */
export interface PostgresBrokerOptions extends PostgresCommonOptions {
  /** Most messages one claim statement takes (default 500); larger `max` values are capped. */
  maxClaim?: number;
  /** Backstop poll of an idle fetch in ms while NOTIFY works (default 5 000). */
  pollMs?: number;
  /** Poll of an idle fetch in ms while the LISTEN connection is down (default 500). */
  degradedPollMs?: number;
}

/** Attempts of statements safe to repeat after a lost connection (guarded by a lease token, reads). */
const ATTEMPTS = 3;
/** Shortest pause after an empty claim when the group's next due time has already passed (a row other claimers hold). */
const MIN_PAUSE_MS = 20;
const LEASE_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A row of a claim. */
interface ClaimRow {
  id: string | null;
  body: string | null;
  deliveries: number | null;
  next: string | null;
}

/** A pending ack of the current tick. */
interface PendingAck {
  id: string;
  lease: string;
}

/** A broker on PostgreSQL. */
export class PostgresBroker implements Broker {
  /** @inheritdoc */
  readonly kind = 'postgres';
  /** Publishing honours the `tx` send control. */
  readonly transactional = true;
  private readonly base: PostgresBase;
  private readonly sql: Record<keyof typeof SQL, string>;
  private readonly hub = new WaitHub();
  private readonly listener: Listener;
  private readonly channel: string;
  private readonly maxClaim: number;
  private readonly pollMs: number;
  private readonly degradedPollMs: number;
  /** The batch still collecting acks (not yet sent). */
  private acks: { items: PendingAck[]; done: Promise<void> } | undefined;
  /** The last ack batch handed out (sent or waiting for the one before it). */
  private ackInFlight: Promise<void> | undefined;

  /** @param options connection (string, pool options or your `pg.Pool`), schema, claim and poll settings */
  constructor(options: PostgresBrokerOptions = {}) {
    this.base = new PostgresBase(options, 'postgres broker');
    const s = this.base.s;
    this.sql = Object.fromEntries(Object.entries(SQL).map(([k, f]) => [k, f(s)])) as typeof this.sql;
    this.channel = this.base.channel('messages');
    this.maxClaim = positive('maxClaim', options.maxClaim ?? 500);
    this.pollMs = positive('pollMs', options.pollMs ?? 5000);
    this.degradedPollMs = positive('degradedPollMs', options.degradedPollMs ?? 500);
    this.listener = new Listener(this.base.pool, this.channel, {
      notify: (payload) => this.hub.notify(payload),
      // Notifications sent while the listener was down are lost: every waiter looks again.
      resumed: () => this.hub.wakeAll(),
    });
  }

  /** Schema that holds the broker's tables. */
  get schema(): string {
    return this.base.schema;
  }

  /** @inheritdoc Applies the schema migrations (under an advisory lock) and starts listening. */
  async connect(): Promise<void> {
    await this.base.connect();
    this.listener.ready().catch(() => undefined);
  }

  /** @inheritdoc Wakes waiting fetches (they return []), ends the listener, and the pool unless it is yours. */
  async close(): Promise<void> {
    if (this.base.closed) return;
    const acks = this.ackInFlight;
    await this.base.close(async () => {
      this.hub.clear();
      await acks?.catch(() => undefined);
      await this.listener.close();
    });
  }

  /** @inheritdoc With `tx`, the row is inserted in the caller's transaction (visible at its commit). */
  async publish(group: string, body: string, options: PublishOptions = {}): Promise<void> {
    assertName('group', group);
    const on = this.target(options.tx);
    await this.ready();
    await run(on, 'publish', this.sql.publishSql, [group, body, options.availableAt ?? null, this.channel]);
  }

  /** @inheritdoc One INSERT for the whole batch (and one NOTIFY). The first item's `tx`, if any, is used. */
  async publishBatch(group: string, items: ReadonlyArray<{ body: string; options?: PublishOptions }>): Promise<void> {
    assertName('group', group);
    const on = this.target(items[0]?.options?.tx);
    await this.ready();
    if (items.length === 0) return;
    const bodies = items.map((i) => i.body);
    const ats = items.map((i) => i.options?.availableAt ?? null);
    await run(on, 'publishBatch', this.sql.publishBatchSql, [group, bodies, ats, this.channel]);
  }

  /** @inheritdoc */
  async fetch(group: string, max: number, options: FetchOptions): Promise<Delivery[]> {
    assertName('group', group);
    await this.ready();
    const deadline = Date.now() + Math.max(0, options.waitMs);
    const limit = Math.max(1, Math.min(Math.floor(max), this.maxClaim));
    for (;;) {
      const seen = this.hub.gen(group);
      const lease = randomUUID();
      const res = await run<ClaimRow>(this.base.pool, 'fetch', this.sql.claimSql, [group, limit, lease, Math.max(1, Math.ceil(options.leaseMs))], ATTEMPTS);
      const got: Delivery[] = [];
      let next: number | null = null;
      for (const r of res.rows) {
        if (r.id === null) next = r.next === null ? null : Number(r.next);
        else got.push({ group, body: r.body as string, token: `${r.id}:${lease}`, redelivered: (r.deliveries ?? 1) > 1 });
      }
      if (got.length > 0) return got;
      const now = Date.now();
      if (this.base.closed || options.signal?.aborted === true || now >= deadline) return [];
      if (!this.listener.active) this.listener.ready().catch(() => undefined);
      let ms = Math.min(deadline - now, this.listener.active ? this.pollMs : this.degradedPollMs);
      if (next !== null) ms = Math.min(ms, Math.max(next - now, next <= now ? MIN_PAUSE_MS : 0));
      await this.hub.wait(group, seen, ms, options.signal);
      if (this.base.closed || aborted(options.signal)) return [];
    }
  }

  /**
   * @inheritdoc Acks are coalesced: those of one tick, and all that arrive while the previous DELETE
   * runs, go in the next single DELETE (at most one ack statement in flight per broker).
   */
  async ack(delivery: Delivery): Promise<void> {
    await this.ready();
    const t = parseToken(delivery.token);
    if (t === null) return;
    let batch = this.acks;
    if (batch === undefined) {
      const items: PendingAck[] = [];
      const previous = this.ackInFlight;
      const done = Promise.all([previous?.catch(() => undefined), new Promise<void>((resolve) => setImmediate(resolve))]).then(() => {
        if (this.acks === batch) this.acks = undefined;
        return this.flushAcks(items);
      });
      batch = { items, done };
      this.acks = batch;
      this.ackInFlight = done;
      void done.catch(() => undefined).then(() => {
        if (this.ackInFlight === done) this.ackInFlight = undefined;
      });
    }
    batch.items.push(t);
    await batch.done;
  }

  /** @inheritdoc One UPDATE of body and `run_at`, guarded by the lease token. */
  async retry(delivery: Delivery, body: string, availableAt: number): Promise<void> {
    await this.ready();
    const t = parseToken(delivery.token);
    if (t === null) return;
    await run(this.base.pool, 'retry', this.sql.retrySql, [t.id, t.lease, body, Math.floor(availableAt), this.channel], ATTEMPTS);
  }

  /** @inheritdoc */
  async release(delivery: Delivery): Promise<void> {
    await this.ready();
    const t = parseToken(delivery.token);
    if (t === null) return;
    await run(this.base.pool, 'release', this.sql.releaseSql, [t.id, t.lease, this.channel], ATTEMPTS);
  }

  /** @inheritdoc One UPDATE for all deliveries. */
  async extend(deliveries: ReadonlyArray<Delivery>, leaseMs: number): Promise<string[]> {
    await this.ready();
    const parsed = deliveries.map((d) => ({ d, t: parseToken(d.token) }));
    const valid = parsed.filter((p): p is { d: Delivery; t: PendingAck } => p.t !== null);
    const held = new Set<string>();
    if (valid.length > 0) {
      const res = await run<{ id: string }>(
        this.base.pool,
        'extend',
        this.sql.extendSql,
        [valid.map((p) => p.t.id), valid.map((p) => p.t.lease), Math.max(1, Math.ceil(leaseMs))],
        ATTEMPTS,
      );
      for (const r of res.rows) held.add(r.id);
    }
    return parsed.filter((p) => p.t === null || !held.has(p.t.id)).map((p) => p.d.token);
  }

  /** @inheritdoc One statement: DELETE ... RETURNING into INSERT of the dead letter. */
  async deadLetter(delivery: Delivery, reason: DeadLetterReason): Promise<void> {
    await this.ready();
    const t = parseToken(delivery.token);
    if (t === null) return;
    await run(this.base.pool, 'deadLetter', this.sql.deadLetterSql, [t.id, t.lease, reason.code, reason.message], ATTEMPTS);
  }

  /** @inheritdoc Default limit 100. */
  async listDeadLetters(group: string, options: { offset?: number; limit?: number } = {}): Promise<DeadLetter[]> {
    assertName('group', group);
    await this.ready();
    const offset = Math.max(0, Math.floor(options.offset ?? 0));
    const limit = Math.max(0, Math.floor(options.limit ?? 100));
    const res = await run<{ id: string; body: string; code: string; message: string; at: string }>(
      this.base.pool,
      'listDeadLetters',
      this.sql.listDeadSql,
      [group, offset, limit],
      ATTEMPTS,
    );
    return res.rows.map((r) => ({ id: r.id, group, body: r.body, reason: { code: r.code, message: r.message }, at: Number(r.at) }));
  }

  /** @inheritdoc One statement moves them (and notifies). */
  async redriveDeadLetters(group: string, ids?: ReadonlyArray<string>): Promise<number> {
    assertName('group', group);
    await this.ready();
    const filter = idFilter(ids);
    if (filter !== null && filter.length === 0) return 0;
    const res = await run<{ n: number }>(this.base.pool, 'redriveDeadLetters', this.sql.redriveSql, [group, filter, this.channel]);
    return res.rows[0]?.n ?? 0;
  }

  /** @inheritdoc */
  async deleteDeadLetters(group: string, ids?: ReadonlyArray<string>): Promise<number> {
    assertName('group', group);
    await this.ready();
    const filter = idFilter(ids);
    if (filter !== null && filter.length === 0) return 0;
    const res = await run(this.base.pool, 'deleteDeadLetters', this.sql.deleteDeadSql, [group, filter], ATTEMPTS);
    return res.rowCount ?? 0;
  }

  /** @inheritdoc Messages whose lease ran out count as ready (they are claimable). */
  async counts(group: string): Promise<QueueCounts> {
    assertName('group', group);
    await this.ready();
    const res = await run<{ ready: number; delayed: number; in_flight: number; dead: number }>(this.base.pool, 'counts', this.sql.countsSql, [group], ATTEMPTS);
    const r = res.rows[0];
    return { ready: r?.ready ?? 0, delayed: r?.delayed ?? 0, inFlight: r?.in_flight ?? 0, dead: r?.dead ?? 0 };
  }

  /** @inheritdoc */
  async purge(group: string): Promise<void> {
    assertName('group', group);
    await this.ready();
    await run(this.base.pool, 'purge', this.sql.purgeSql, [group], ATTEMPTS);
  }

  private async flushAcks(items: PendingAck[]): Promise<void> {
    await run(this.base.pool, 'ack', this.sql.ackSql, [items.map((i) => i.id), items.map((i) => i.lease)], ATTEMPTS);
  }

  /** Where a publish runs: the caller's transaction client, or the pool. */
  private target(tx: unknown): Queryable {
    if (tx === undefined) return this.base.pool;
    if (!isQueryable(tx)) throw new InvalidOptionError('tx must be a pg client (or pool client) inside an open transaction');
    return tx;
  }

  private async ready(): Promise<void> {
    if (this.base.closed) throw new ClosedError('postgres broker');
    await this.connect();
  }
}

/** Splits a delivery token `<id>:<lease uuid>`; `null` when it is not one of this broker's. */
function parseToken(token: string): PendingAck | null {
  const i = token.indexOf(':');
  if (i <= 0) return null;
  const id = token.slice(0, i);
  const lease = token.slice(i + 1);
  return /^\d{1,18}$/.test(id) && LEASE_PATTERN.test(lease) ? { id, lease } : null;
}

/** Dead-letter ids as numbers for SQL (unknown, non-numeric ids are ignored); `null`: all. */
function idFilter(ids: ReadonlyArray<string> | undefined): string[] | null {
  if (ids === undefined) return null;
  return ids.filter((id) => /^\d{1,18}$/.test(id));
}

/** True when the fetch's signal aborted (read through a call: TypeScript narrows the property). */
function aborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}

function positive(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new InvalidOptionError(`${name} must be a whole number ≥ 1`);
  return value;
}
