/**
 * The schedules contract: the compare-and-set rules of a backend's schedule store, then the
 * behaviour of `client.schedules` with servers on a broker and backend (idempotent concurrent
 * upserts, one run per fire time, definition changes, pause/resume/trigger/remove, overlap modes,
 * catch-up after every server was down). Run against every backend with a schedule store:
 *
 * ```ts
 * schedulesContract('redis', () => ({ broker: () => new RedisBroker({ prefix }), backend: () => new RedisBackend({ prefix }) }));
 * ```
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import type { Backend } from '../../src/backend.js';
import type { Broker } from '../../src/broker.js';
import { Client, Server, silentLogger, type ScheduleDefinition, type ServerEvents, type TaskCtl } from '../../src/index.js';

/** Broker and backend factories of one implementation; all instances share a namespace. */
export interface SchedulesHarness {
  broker(): Broker;
  backend(): Backend;
  teardown?(): Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until<T>(fn: () => Promise<T> | T, ms = 20_000, what = 'condition'): Promise<NonNullable<T>> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** One fire as its handler saw it. */
interface Run {
  id: string;
  fireAt: number;
  start: number;
  end: number;
}

/** Registers the schedules contract for one implementation. */
export function schedulesContract(name: string, makeHarness: () => SchedulesHarness): void {
  describe(`schedules contract: ${name}`, () => {
    let harness: SchedulesHarness;
    let servers: Server[];
    let clients: Client[];
    let group: string;
    let runs: Run[];
    let missedEvents: Array<ServerEvents['scheduleMissed'][0]>;

    beforeEach(() => {
      harness = makeHarness();
      servers = [];
      clients = [];
      group = `sched-${randomUUID().slice(0, 8)}`;
      runs = [];
      missedEvents = [];
    });
    afterEach(async () => {
      await Promise.all(servers.map((s) => s.shutdown(2000)));
      await Promise.all(clients.map((c) => c.close()));
      await harness.teardown?.();
    });

    const client = (): Client => {
      const c = new Client({ broker: harness.broker(), backend: harness.backend(), logger: silentLogger });
      clients.push(c);
      return c;
    };
    /** A server running `group` whose task `beat` records each run (sleeping `ms`). */
    const server = async (ms = 0, concurrency = 4): Promise<Server> => {
      const s = new Server({ broker: harness.broker(), backend: harness.backend(), logger: silentLogger, leaseMs: 5000, fetchWaitMs: 300, abortPollMs: 100 });
      servers.push(s);
      s.add(group, 'beat', async (ctl: TaskCtl) => {
        const start = Date.now();
        if (ms > 0) await sleep(ms);
        const at = ctl.id.slice(ctl.id.indexOf('@') + 1);
        runs.push({ id: ctl.id, fireAt: Date.parse(at), start, end: Date.now() });
      }, { ctl: true });
      s.on('scheduleMissed', (e) => missedEvents.push(e));
      await s.run(group, concurrency);
      return s;
    };
    const beat = (): { group: string; name: string } => ({ group, name: 'beat' });
    const fired = (): number[] => runs.filter((r) => !Number.isNaN(r.fireAt)).map((r) => r.fireAt);

    describe('store', () => {
      it('writes by compare-and-set: one of concurrent writers wins, revisions count up', async () => {
        const a = harness.backend();
        const b = harness.backend();
        try {
          const store = a.scheduleStore!;
          const other = b.scheduleStore!;
          const key = `s-${randomUUID()}`;
          expect(await store.readSchedule(key)).toBeNull();
          const wins = await Promise.all([store.writeSchedule(key, '"a"', 0), other.writeSchedule(key, '"b"', 0), store.writeSchedule(key, '"c"', 0)]);
          expect(wins.filter(Boolean)).toHaveLength(1);
          const first = await other.readSchedule(key);
          expect(first).toMatchObject({ name: key, rev: 1 });
          expect(await store.writeSchedule(key, '"x"', 0)).toBe(false);
          expect(await store.writeSchedule(key, '"y|z"', 1)).toBe(true);
          expect(await other.writeSchedule(key, '"w"', 1)).toBe(false);
          expect(await other.readSchedule(key)).toEqual({ name: key, rev: 2, data: '"y|z"' });
          expect((await store.listSchedules()).filter((s) => s.name === key)).toEqual([{ name: key, rev: 2, data: '"y|z"' }]);
          expect(await store.deleteSchedule(key)).toBe(true);
          expect(await store.deleteSchedule(key)).toBe(false);
          expect(await store.readSchedule(key)).toBeNull();
          expect(await store.writeSchedule(key, '"again"', 0)).toBe(true);
          await store.deleteSchedule(key);
        } finally {
          await Promise.all([a.close(), b.close()]);
        }
      });
    });

    it('concurrent upserts of one definition make one schedule; each fire time runs once, none skipped', async () => {
      await Promise.all([server(), server()]);
      const name = `every-${randomUUID().slice(0, 8)}`;
      const def: ScheduleDefinition = { everyMs: 1000 };
      const infos = await Promise.all([client(), client(), client(), client()].map((c) => c.schedules.upsert(name, def, beat())));
      expect(new Set(infos.map((i) => i.revision)).size).toBe(1);
      const c = client();
      await until(() => fired().length >= 4, 20_000, '4 fires');
      // An upsert while it runs (as a restarted process would) changes nothing.
      expect((await c.schedules.upsert(name, def, beat())).revision).toBe(infos[0]?.revision);
      await until(() => fired().length >= 6, 20_000, '6 fires');
      await c.schedules.pause(name);
      await sleep(300);
      const times = fired().sort((x, y) => x - y);
      expect(new Set(times).size).toBe(times.length);
      for (let i = 1; i < times.length; i++) expect((times[i] as number) - (times[i - 1] as number)).toBe(1000);
      const info = await c.schedules.get(name);
      expect(info).toMatchObject({ name, group, task: 'beat', everyMs: 1000, paused: true, nextFireAt: null, fires: times.length });
      expect(info?.lastFireAt?.getTime()).toBe(times[times.length - 1]);
      expect((await c.schedules.list()).map((s) => s.name)).toContain(name);
      await c.schedules.remove(name);
    });

    it('a new definition replaces the old one: the old chain stops firing', async () => {
      await server();
      const c = client();
      const name = `change-${randomUUID().slice(0, 8)}`;
      const first = await c.schedules.upsert(name, { everyMs: 1000 }, beat());
      await until(() => fired().length >= 2, 20_000, 'fires of the first definition');
      const changedAt = Date.now();
      const second = await c.schedules.upsert(name, { everyMs: 3000 }, beat());
      expect(second.revision).not.toBe(first.revision);
      expect(second.everyMs).toBe(3000);
      await until(() => fired().filter((t) => t > changedAt + 1000).length >= 2, 20_000, 'fires of the second definition');
      const after = fired().filter((t) => t > changedAt + 1000);
      expect(after.every((t) => t % 3000 === 0)).toBe(true);
      await c.schedules.remove(name);
    });

    it('an upsert revives a schedule whose pending tick was lost', async () => {
      const s = await server();
      const c = client();
      const name = `revive-${randomUUID().slice(0, 8)}`;
      await c.schedules.upsert(name, { everyMs: 1000 }, beat());
      await until(() => fired().length >= 1, 20_000, 'a first fire');
      await s.shutdown(2000);
      // The chain's pending tick is gone (a purged queue), while its send is still remembered.
      const broker = harness.broker();
      await broker.purge(group);
      await broker.close();
      await sleep(1500);
      await server();
      const lost = Date.now();
      await sleep(1500);
      expect(fired().filter((t) => t > lost)).toEqual([]);
      await c.schedules.upsert(name, { everyMs: 1000 }, beat());
      await until(() => fired().filter((t) => t > lost).length >= 2, 20_000, 'fires after the revival');
      const times = fired();
      expect(new Set(times).size).toBe(times.length);
      await c.schedules.remove(name);
    });

    it('limit and endAt end a schedule; startAt anchors it; jitter delays each fire deterministically', async () => {
      await server();
      const c = client();
      const limited = `limit-${randomUUID().slice(0, 8)}`;
      const start = Math.ceil(Date.now() / 1000) * 1000 + 1500;
      await c.schedules.upsert(limited, { everyMs: 1000, startAt: start, limit: 2, jitterMs: 400 }, beat());
      const ended = await until(async () => {
        const i = await c.schedules.get(limited);
        return i !== null && i.fires === 2 && i.nextFireAt === null && runs.length === 2 ? i : null;
      }, 20_000, 'the limit');
      expect(fired().sort()).toEqual([start, start + 1000]);
      expect(ended.lastFireAt?.getTime()).toBe(start + 1000);
      // Each run started no earlier than its fire time (jitter only delays).
      expect(runs.every((r) => r.start >= r.fireAt)).toBe(true);
      await sleep(1500);
      expect(runs).toHaveLength(2);
      const bounded = `end-${randomUUID().slice(0, 8)}`;
      const endAt = Date.now() + 2500;
      await c.schedules.upsert(bounded, { everyMs: 1000, endAt }, beat());
      await until(async () => (await c.schedules.get(bounded))?.nextFireAt === null, 20_000, 'the end');
      await sleep(1200);
      const after = fired().filter((t) => t >= endAt);
      expect(after).toEqual([]);
      await Promise.all([c.schedules.remove(limited), c.schedules.remove(bounded)]);
    });

    it('pause, trigger, resume and remove', async () => {
      await server();
      const c = client();
      const name = `ops-${randomUUID().slice(0, 8)}`;
      await c.schedules.upsert(name, { everyMs: 1000 }, beat());
      await until(() => fired().length >= 1, 20_000, 'a first fire');
      const paused = await c.schedules.pause(name);
      expect(paused.paused).toBe(true);
      await sleep(200);
      const before = fired().length;
      const pausedAt = Date.now();
      await sleep(2200);
      expect(fired().filter((t) => t > pausedAt)).toEqual([]);
      const id = await c.schedules.trigger(name);
      expect(id.startsWith(`${name}@trigger-`)).toBe(true);
      expect((await c.getResult(id, 15_000)).isSuccess()).toBe(true);
      expect(fired()).toHaveLength(before);
      const resumed = await c.schedules.resume(name);
      expect(resumed.paused).toBe(false);
      expect(resumed.nextFireAt?.getTime()).toBeGreaterThan(pausedAt);
      await until(() => fired().some((t) => t > pausedAt), 20_000, 'fires after resume');
      expect(await c.schedules.remove(name)).toBe(true);
      expect(await c.schedules.get(name)).toBeNull();
      await sleep(200);
      const removedAt = Date.now();
      await sleep(2200);
      expect(fired().filter((t) => t > removedAt)).toEqual([]);
      expect(await c.schedules.remove(name)).toBe(false);
      await expect(c.schedules.pause(name)).rejects.toMatchObject({ code: 'ERR_NOT_FOUND' });
      await expect(c.schedules.trigger(name)).rejects.toMatchObject({ code: 'ERR_NOT_FOUND' });
    });

    /** Largest number of runs of `list` that overlapped in time. */
    const maxOverlap = (list: Run[]): number => {
      let max = 0;
      for (const r of list) max = Math.max(max, list.filter((o) => o.start < r.end && r.start < o.end).length);
      return max;
    };

    it.each(['skip', 'buffer', 'allow'] as const)('overlap %s with a handler slower than the interval', async (overlap) => {
      await server(2300, 4);
      const c = client();
      const name = `overlap-${overlap}-${randomUUID().slice(0, 8)}`;
      await c.schedules.upsert(name, { everyMs: 1000, overlap }, beat());
      await until(() => runs.length >= 3, 30_000, '3 finished fires');
      await c.schedules.pause(name);
      const info = await until(async () => {
        const i = await c.schedules.get(name);
        return i !== null && i.fires === runs.length && (overlap === 'allow' || i.skipped > 0) ? i : null;
      }, 20_000, 'in-flight fires to finish');
      const sorted = [...runs].sort((a, b) => a.start - b.start);
      if (overlap === 'allow') {
        expect(maxOverlap(sorted)).toBeGreaterThan(1);
        expect(info.skipped).toBe(0);
      } else {
        expect(maxOverlap(sorted)).toBe(1);
        expect(info.skipped).toBeGreaterThan(0);
        expect(missedEvents.some((e) => e.schedule === name && e.reason === 'overlap')).toBe(true);
      }
      if (overlap === 'buffer') {
        // The buffered fire starts once the previous one finished: runs follow each other without a free slot of a second.
        for (let i = 1; i < sorted.length; i++) expect((sorted[i] as Run).start - (sorted[i - 1] as Run).end).toBeLessThan(2000);
        // Each run's fire time was buffered, not skipped: it ran later than its time by about the handler's length.
        expect(sorted.slice(1).some((r) => r.start - r.fireAt > 800)).toBe(true);
      }
      await c.schedules.remove(name);
    });

    describe('catch-up after every server was down', () => {
      const GRACE = 500;
      const DOWN_MS = 5000;
      /** Runs the schedule, stops every server for DOWN_MS, starts one again; returns what ran around it. */
      const downtime = async (catchup: ScheduleDefinition['catchup']): Promise<{ lastBefore: number; restart: number; booted: number; info: Awaited<ReturnType<Client['schedules']['get']>> }> => {
        const first = await server();
        const c = client();
        const name = `catchup-${randomUUID().slice(0, 8)}`;
        await c.schedules.upsert(name, { everyMs: 1000, graceMs: GRACE, ...(catchup === undefined ? {} : { catchup }) }, beat());
        await until(() => fired().length >= 2, 20_000, 'fires before the downtime');
        await first.shutdown(5000);
        const lastBefore = Math.max(...fired());
        await sleep(DOWN_MS);
        const restart = Date.now();
        await server();
        // The first tick after the restart runs between `restart` and (about) `booted`.
        const booted = Date.now();
        const info = await until(async () => {
          const i = await c.schedules.get(name);
          return i !== null && i.lastFireAt !== null && i.lastFireAt.getTime() > booted + 1000 && i.fires === fired().length ? i : null;
        }, 20_000, 'fires after the restart');
        await c.schedules.pause(name);
        return { lastBefore, restart, booted, info };
      };
      const inDowntime = (lastBefore: number, upTo: number): number[] => fired().filter((t) => t > lastBefore && t <= upTo);

      it('none: no fire of the downtime runs; they are counted as missed, with an event', async () => {
        const { lastBefore, restart, info } = await downtime('none');
        expect(inDowntime(lastBefore, restart - GRACE)).toEqual([]);
        expect(info?.missed).toBeGreaterThanOrEqual(3);
        expect(missedEvents.some((e) => e.reason === 'late' && e.count >= 3)).toBe(true);
        expect(new Set(fired()).size).toBe(fired().length);
      });
      it('latest: the most recent missed fire runs once, the others are missed', async () => {
        const { lastBefore, restart, booted, info } = await downtime('latest');
        expect(inDowntime(lastBefore, restart - GRACE).length).toBeLessThanOrEqual(1);
        expect(inDowntime(lastBefore, booted).length).toBeGreaterThanOrEqual(1);
        expect(info?.missed).toBeGreaterThanOrEqual(2);
        expect(new Set(fired()).size).toBe(fired().length);
      });
      it('window: the missed fires within the window run, older ones are missed', async () => {
        const { lastBefore, restart, booted, info } = await downtime({ windowMs: 2500 });
        const ran = inDowntime(lastBefore, booted);
        expect(ran.length).toBeGreaterThanOrEqual(1);
        expect(ran.every((t) => t >= restart - 2500)).toBe(true);
        expect(info?.missed).toBeGreaterThanOrEqual(1);
        expect(new Set(fired()).size).toBe(fired().length);
      });
    });

    it('rejects invalid definitions with typed errors, before storing anything', async () => {
      const c = client();
      await expect(c.schedules.upsert('bad name!', { everyMs: 1000 }, beat())).rejects.toMatchObject({ code: 'ERR_INVALID_NAME' });
      await expect(c.schedules.upsert('bad-cron', { cron: '61 * * * *' }, beat())).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
      await expect(c.schedules.upsert('bad-tz', { cron: '0 3 * * *', tz: 'Nowhere/Town' }, beat())).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
      await expect(c.schedules.upsert('bad-every', { everyMs: 5 }, beat())).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
      await expect(c.schedules.upsert('bad-catchup', { everyMs: 1000, catchup: 'all' as never }, beat())).rejects.toMatchObject({ code: 'ERR_INVALID_OPTION' });
      expect(await c.schedules.get('bad-cron')).toBeNull();
    });
  });
}
