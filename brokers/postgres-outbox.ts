/**
 * Transactional send for brokers that cannot join a database transaction (Redis, RabbitMQ), through
 * an outbox in PostgreSQL (`tasuki/brokers/postgres-outbox`). `PostgresOutbox` wraps the real broker:
 * a publish with the `tx` send control inserts the message into `<schema>.outbox` in the caller's
 * transaction (so it exists if and only if that commits); everything else goes to the wrapped broker.
 * Every process that uses the wrapper (each server) runs the relay, leaderless: it claims committed
 * rows with `FOR UPDATE SKIP LOCKED`, publishes them to the wrapped broker, and deletes them in the
 * same transaction once the broker confirmed. The relay wakes on `NOTIFY` (sent at the caller's
 * commit), polls slowly as a backstop, and backs off after failures. A relay that dies between
 * publish and delete leaves the rows, which are published again: at least once, and a duplicate of a
 * task whose state is final does not run again.
 */
import type { Broker, DeadLetter, DeadLetterReason, Delivery, FetchOptions, PublishOptions, QueueCounts } from '../src/broker.js';
import { ClosedError, InvalidOptionError } from '../src/errors.js';
import { assertName } from '../src/names.js';
import { PostgresBase } from '../postgres/base.js';
import type pg from 'pg';
import { isConnectionFailure, isQueryable, mapError, run, type PostgresCommonOptions } from '../postgres/connection.js';
import { Listener } from '../postgres/listener.js';

/** Options of {@link PostgresOutbox}. */
export interface PostgresOutboxOptions extends PostgresCommonOptions {
  /** The broker messages are relayed to (closed with the outbox). */
  broker: Broker;
  /** Most rows one relay transaction moves (default 200). */
  batchSize?: number;
  /** Backstop poll of the relay in ms (default 5 000). */
  pollMs?: number;
  /** Run the relay in this process (default true; false for processes that only send). */
  relay?: boolean;
}

/** A row of the outbox. */
interface OutboxRow {
  id: string;
  grp: string;
  body: string;
  available_at: string | null;
}

/** A broker wrapper whose `tx` publishes go through a PostgreSQL outbox. */
export class PostgresOutbox implements Broker {
  /** `<wrapped kind>+outbox`. */
  readonly kind: string;
  /** Publishing honours the `tx` send control. */
  readonly transactional = true;
  /** The wrapped broker. */
  readonly inner: Broker;
  private readonly base: PostgresBase;
  private readonly listener: Listener;
  private readonly batchSize: number;
  private readonly pollMs: number;
  private readonly insertSql: string;
  private readonly claimSql: string;
  private readonly deleteSql: string;
  private readonly channel: string;
  private relaying: Promise<void> | undefined;
  private again = false;
  private timer: NodeJS.Timeout | undefined;
  private failures = 0;
  private readonly relayOn: boolean;

  /** @param options the wrapped broker, connection (string, pool options or your `pg.Pool`), schema, relay settings */
  constructor(options: PostgresOutboxOptions) {
    if (options.broker === undefined) throw new InvalidOptionError('PostgresOutbox needs the broker to relay to');
    this.inner = options.broker;
    this.kind = `${options.broker.kind}+outbox`;
    this.base = new PostgresBase(options, 'postgres outbox');
    const s = this.base.s;
    this.channel = this.base.channel('outbox');
    this.batchSize = options.batchSize ?? 200;
    this.pollMs = options.pollMs ?? 5000;
    this.relayOn = options.relay ?? true;
    if (!Number.isInteger(this.batchSize) || this.batchSize < 1) throw new InvalidOptionError('batchSize must be a whole number ≥ 1');
    if (!Number.isInteger(this.pollMs) || this.pollMs < 1) throw new InvalidOptionError('pollMs must be a whole number ≥ 1');
    this.insertSql = `WITH rows AS (
      INSERT INTO ${s}.outbox (grp, body, available_at)
      SELECT $1, x.body, x.at FROM unnest($2::text[], $3::bigint[]) WITH ORDINALITY AS x(body, at, o) ORDER BY x.o RETURNING id
    ) SELECT pg_notify($4, '')::text AS notified FROM rows LIMIT 1`;
    this.claimSql = `SELECT id::text AS id, grp, body, available_at FROM ${s}.outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`;
    this.deleteSql = `DELETE FROM ${s}.outbox WHERE id = ANY($1::bigint[])`;
    this.listener = new Listener(this.base.pool, this.channel, { notify: () => this.kick(), resumed: () => this.kick() });
  }

  /** Rows waiting in the outbox (committed, not yet relayed). */
  async pending(): Promise<number> {
    await this.ready();
    const res = await run<{ n: number }>(this.base.pool, 'outbox count', `SELECT count(*)::int AS n FROM ${this.base.s}.outbox`, [], 3);
    return res.rows[0]?.n ?? 0;
  }

  /** @inheritdoc Migrates the schema, connects the wrapped broker and starts the relay (unless `relay: false`). */
  async connect(): Promise<void> {
    await this.base.connect();
    await this.inner.connect();
    if (this.relayOn && this.timer === undefined && !this.base.closed) {
      this.timer = setInterval(() => this.kick(), this.pollMs);
      this.timer.unref();
      this.listener.ready().catch(() => undefined);
      this.kick();
    }
  }

  /** @inheritdoc Stops the relay (after its current batch), then closes the wrapped broker. */
  async close(): Promise<void> {
    if (this.base.closed) return;
    if (this.timer !== undefined) clearInterval(this.timer);
    await this.base.close(async () => {
      await this.relaying;
      await this.listener.close();
    });
    await this.inner.close();
  }

  /** @inheritdoc With `tx`: into the outbox, in the caller's transaction. Without: the wrapped broker. */
  publish(group: string, body: string, options: PublishOptions = {}): Promise<void> {
    if (options.tx === undefined) return this.inner.publish(group, body, options);
    return this.publishBatch(group, [{ body, options }]);
  }

  /** @inheritdoc With `tx` (on the first item): one INSERT into the outbox in the caller's transaction. */
  async publishBatch(group: string, items: ReadonlyArray<{ body: string; options?: PublishOptions }>): Promise<void> {
    const tx = items[0]?.options?.tx;
    if (tx === undefined) return this.inner.publishBatch(group, items);
    assertName('group', group);
    if (!isQueryable(tx)) throw new InvalidOptionError('tx must be a pg client (or pool client) inside an open transaction');
    await this.ready();
    if (items.length === 0) return;
    await run(tx, 'outbox insert', this.insertSql, [group, items.map((i) => i.body), items.map((i) => i.options?.availableAt ?? null), this.channel]);
  }

  /** @inheritdoc */
  fetch(group: string, max: number, options: FetchOptions): Promise<Delivery[]> {
    return this.inner.fetch(group, max, options);
  }
  /** @inheritdoc */
  ack(delivery: Delivery): Promise<void> {
    return this.inner.ack(delivery);
  }
  /** @inheritdoc */
  retry(delivery: Delivery, body: string, availableAt: number): Promise<void> {
    return this.inner.retry(delivery, body, availableAt);
  }
  /** @inheritdoc */
  release(delivery: Delivery): Promise<void> {
    return this.inner.release(delivery);
  }
  /** @inheritdoc */
  extend(deliveries: ReadonlyArray<Delivery>, leaseMs: number): Promise<string[]> {
    return this.inner.extend(deliveries, leaseMs);
  }
  /** @inheritdoc */
  deadLetter(delivery: Delivery, reason: DeadLetterReason): Promise<void> {
    return this.inner.deadLetter(delivery, reason);
  }
  /** @inheritdoc */
  listDeadLetters(group: string, options?: { offset?: number; limit?: number }): Promise<DeadLetter[]> {
    return this.inner.listDeadLetters(group, options);
  }
  /** @inheritdoc */
  redriveDeadLetters(group: string, ids?: ReadonlyArray<string>): Promise<number> {
    return this.inner.redriveDeadLetters(group, ids);
  }
  /** @inheritdoc */
  deleteDeadLetters(group: string, ids?: ReadonlyArray<string>): Promise<number> {
    return this.inner.deleteDeadLetters(group, ids);
  }
  /** @inheritdoc Counts of the wrapped broker (rows still in the outbox are not included: see {@link pending}). */
  counts(group: string): Promise<QueueCounts> {
    return this.inner.counts(group);
  }
  /** @inheritdoc Purges the wrapped broker's group and the group's outbox rows. */
  async purge(group: string): Promise<void> {
    await this.inner.purge(group);
    if (!this.base.closed) await run(this.base.pool, 'outbox purge', `DELETE FROM ${this.base.s}.outbox WHERE grp = $1`, [group], 3);
  }

  /** Runs the relay now, or once more after the pass in progress. */
  private kick(): void {
    if (this.base.closed) return;
    if (this.relaying !== undefined) {
      this.again = true;
      return;
    }
    this.relaying = this.relayAll().finally(() => {
      this.relaying = undefined;
      if (this.again && !this.base.closed) {
        this.again = false;
        this.kick();
      }
    });
  }

  /** Moves batches until the outbox is empty (or a failure: retried after a backoff). */
  private async relayAll(): Promise<void> {
    try {
      while (!this.base.closed && (await this.relayBatch()) === this.batchSize);
      this.failures = 0;
    } catch {
      this.failures++;
      const delay = Math.min(100 * 2 ** this.failures, this.pollMs);
      setTimeout(() => this.kick(), delay).unref();
    }
  }

  /** One relay transaction: claim, publish to the wrapped broker (per group, in order), delete, commit. */
  private async relayBatch(): Promise<number> {
    let client: pg.PoolClient;
    try {
      client = await this.base.pool.connect();
    } catch (err) {
      throw mapError(err, 'outbox relay');
    }
    let failed: unknown;
    try {
      await client.query('BEGIN');
      const { rows } = await client.query<OutboxRow>(this.claimSql, [this.batchSize]);
      if (rows.length === 0) {
        await client.query('COMMIT');
        return 0;
      }
      const byGroup = new Map<string, Array<{ body: string; options: PublishOptions }>>();
      for (const r of rows) {
        let list = byGroup.get(r.grp);
        if (list === undefined) byGroup.set(r.grp, (list = []));
        list.push({ body: r.body, options: r.available_at === null ? {} : { availableAt: Number(r.available_at) } });
      }
      for (const [group, items] of byGroup) await this.inner.publishBatch(group, items);
      await client.query(this.deleteSql, [rows.map((r) => r.id)]);
      await client.query('COMMIT');
      return rows.length;
    } catch (err) {
      failed = err;
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      // A lost database connection is dropped; after a failure of the wrapped broker it is reused.
      client.release(failed instanceof Error && isConnectionFailure(failed) ? failed : undefined);
    }
  }

  private async ready(): Promise<void> {
    if (this.base.closed) throw new ClosedError('postgres outbox');
    await this.connect();
  }
}
