/**
 * The PostgreSQL broker against a real PostgreSQL (127.0.0.1:5432, database `test`): the broker
 * contract suite (each test in its own schema, dropped afterwards) plus Postgres specifics.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { PostgresBroker } from '../brokers/postgres.js';
import type { Delivery } from '../src/broker.js';
import { brokerContract } from './contract/broker.js';
import { PG_URL, adminPool, dropSchema, schemaName } from './helpers/postgres.js';

const admin = adminPool();
afterAll(() => admin.end());

brokerContract('postgres', () => {
  const schema = schemaName('bk');
  return {
    create: () => new PostgresBroker({ connection: PG_URL, schema }),
    teardown: () => dropSchema(admin, schema),
  };
});

describe('postgres broker specifics', () => {
  const schema = schemaName('bks');
  const brokers: PostgresBroker[] = [];
  const make = async (options: ConstructorParameters<typeof PostgresBroker>[0] = {}): Promise<PostgresBroker> => {
    const b = new PostgresBroker({ connection: PG_URL, schema, ...options });
    brokers.push(b);
    await b.connect();
    return b;
  };
  const group = (): string => `g-${randomUUID().slice(0, 8)}`;
  afterEach(async () => {
    await Promise.all(brokers.splice(0).map((b) => b.close()));
  });
  afterAll(() => dropSchema(admin, schema));

  it('an idle fetch is woken by NOTIFY, not by its poll (the backstop poll is set beyond the test)', async () => {
    const waiter = await make({ pollMs: 3_600_000 });
    const producer = await make();
    const g = group();
    const pending = waiter.fetch(g, 1, { leaseMs: 30_000, waitMs: 3_600_000 });
    await new Promise((r) => setTimeout(r, 200));
    await producer.publish(g, 'wake');
    const [d] = await pending;
    expect(d?.body).toBe('wake');
    await waiter.ack(d as Delivery);
  });

  it('an idle fetch wakes when a delay published during its wait comes due', async () => {
    const waiter = await make({ pollMs: 3_600_000 });
    const producer = await make();
    const g = group();
    const pending = waiter.fetch(g, 1, { leaseMs: 30_000, waitMs: 3_600_000 });
    await new Promise((r) => setTimeout(r, 200));
    const at = Date.now() + 300;
    await producer.publish(g, 'due', { availableAt: at });
    const [d] = await pending;
    expect(d?.body).toBe('due');
    expect(Date.now()).toBeGreaterThanOrEqual(at);
    await waiter.ack(d as Delivery);
  });

  it('an idle fetch wakes when a lease it found runs out', async () => {
    const holder = await make();
    const waiter = await make({ pollMs: 3_600_000 });
    const g = group();
    await holder.publish(g, 'leased');
    const [first] = await holder.fetch(g, 1, { leaseMs: 300, waitMs: 1000 });
    expect(first).toBeDefined();
    const [again] = await waiter.fetch(g, 1, { leaseMs: 30_000, waitMs: 3_600_000 });
    expect(again?.body).toBe('leased');
    expect(again?.redelivered).toBe(true);
    await waiter.ack(again as Delivery);
  });

  it('keeps one LISTEN connection per broker instance, however many fetches wait', async () => {
    const appName = `tasuki-listen-${randomUUID().slice(0, 8)}`;
    const b = await make({ connection: { connectionString: PG_URL, application_name: appName } });
    const g = group();
    const ac = new AbortController();
    const waits = Array.from({ length: 8 }, (_, i) => b.fetch(`${g}-${i % 3}`, 1, { leaseMs: 1000, waitMs: 60_000, signal: ac.signal }));
    await new Promise((r) => setTimeout(r, 300));
    const res = await admin.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN%'`, [appName]);
    ac.abort();
    expect(await Promise.all(waits)).toEqual(Array.from({ length: 8 }, () => []));
    expect(res.rows[0]).toEqual({ n: 1 });
  });

  it('the longest schema name allowed (47 characters) publishes, wakes and fetches; a longer one is refused', async () => {
    const long = `${schemaName('bkl')}${'x'.repeat(47)}`.slice(0, 47);
    try {
      const waiter = await make({ schema: long, pollMs: 3_600_000 });
      const producer = await make({ schema: long });
      const g = group();
      const waiting = waiter.fetch(g, 1, { leaseMs: 30_000, waitMs: 20_000 });
      await new Promise((r) => setTimeout(r, 200));
      await producer.publish(g, 'long');
      const got = await waiting;
      expect(got.map((d) => d.body)).toEqual(['long']);
      await waiter.ack(got[0] as Delivery);
    } finally {
      await Promise.all(brokers.splice(0).map((b) => b.close()));
      await dropSchema(admin, long);
    }
    expect(() => new PostgresBroker({ connection: PG_URL, schema: `${long}x` })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
  });

  it('caps one claim at maxClaim rows', async () => {
    const b = await make({ maxClaim: 4 });
    const g = group();
    await b.publishBatch(g, Array.from({ length: 10 }, (_, i) => ({ body: `m${i}` })));
    const got = await b.fetch(g, 10, { leaseMs: 30_000, waitMs: 1000 });
    expect(got.map((d) => d.body)).toEqual(['m0', 'm1', 'm2', 'm3']);
    await b.purge(g);
  });

  it('acks that arrive together go in one DELETE statement', async () => {
    const pool = new pg.Pool({ connectionString: PG_URL, max: 4 });
    const acks: string[] = [];
    const query = pool.query.bind(pool) as (text: string, values?: unknown[]) => Promise<pg.QueryResult>;
    (pool as unknown as { query: typeof query }).query = (text, values) => {
      if (text.startsWith(`DELETE FROM "${schema}".messages m USING unnest`)) acks.push(text);
      return query(text, values);
    };
    let opened: PostgresBroker | undefined;
    try {
      const b = (opened = await make({ connection: pool }));
      const g = group();
      await b.publishBatch(g, Array.from({ length: 20 }, (_, i) => ({ body: `m${i}` })));
      const got = await b.fetch(g, 20, { leaseMs: 30_000, waitMs: 1000 });
      expect(got).toHaveLength(20);
      await Promise.all(got.map((d) => b.ack(d)));
      expect(acks).toHaveLength(1);
      expect(await b.counts(g)).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 0 });
    } finally {
      await opened?.close(); // its LISTEN connection is a client of this pool
      await pool.end();
    }
  });

  it('a publish in the caller transaction is delivered after COMMIT and never after ROLLBACK', async () => {
    const b = await make();
    const g = group();
    for (const [body, end] of [
      ['rolled-back', 'ROLLBACK'],
      ['committed', 'COMMIT'],
    ] as const) {
      const client = await admin.connect();
      try {
        await client.query('BEGIN');
        await b.publish(g, body, { tx: client });
        expect(await b.fetch(g, 1, { leaseMs: 1000, waitMs: 50 })).toEqual([]);
        await client.query(end);
      } finally {
        client.release();
      }
    }
    const got = await b.fetch(g, 5, { leaseMs: 30_000, waitMs: 2000 });
    expect(got.map((d) => d.body)).toEqual(['committed']);
    await b.ack(got[0] as Delivery);
    expect(await b.counts(g)).toEqual({ ready: 0, delayed: 0, inFlight: 0, dead: 0 });
  });

  it('operations with a foreign or malformed token are harmless no-ops', async () => {
    const b = await make();
    const g = group();
    await b.publish(g, 'x');
    const [d] = await b.fetch(g, 1, { leaseMs: 30_000, waitMs: 1000 });
    const bad = (token: string): Delivery => ({ group: g, body: 'x', token, redelivered: false });
    const foreign = bad(`${(d as Delivery).token.split(':')[0]}:${randomUUID()}`);
    for (const t of [bad('nonsense'), bad("1'; DROP TABLE x; --:zz"), foreign]) {
      await b.ack(t);
      await b.retry(t, 'y', Date.now());
      await b.release(t);
      await b.deadLetter(t, { code: 'ERR_DECODE', message: 'no' });
      expect(await b.extend([t], 1000)).toEqual([t.token]);
    }
    expect(await b.counts(g)).toEqual({ ready: 0, delayed: 0, inFlight: 1, dead: 0 });
    await b.ack(d as Delivery);
  });
});
