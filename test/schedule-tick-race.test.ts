/**
 * Two ticks of one schedule racing with different clocks (after a downtime: the overdue tick and the
 * tick an upsert revived) may choose different catch-up fires. Only the plan that wins the
 * compare-and-set may run: every fire task that exists is one the record counts. (A tick that sent
 * its fires before its write, and then lost the race, left fires that ran but were never counted.)
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryBroker } from '../brokers/memory.js';
import { MemoryBackend } from '../backends/memory.js';
import { Client, silentLogger, taskRef } from '../src/index.js';
import { ScheduleTicks } from '../src/schedule/tick.js';
import { fireId, parseRecord } from '../src/schedule/record.js';

afterEach(() => {
  vi.useRealTimers();
});

/** A client on the memory broker and backend, with the clock faked at t0 (2030-01-01). */
function setup(): { t0: number; backend: MemoryBackend; client: Client; store: NonNullable<MemoryBackend['scheduleStore']> } {
  vi.useFakeTimers({ toFake: ['Date'] });
  const t0 = Date.UTC(2030, 0, 1, 0, 0, 0);
  vi.setSystemTime(t0);
  const backend = new MemoryBackend();
  const client = new Client({ broker: new MemoryBroker(), backend, logger: silentLogger });
  const store = backend.scheduleStore;
  if (store === undefined) throw new Error('the memory backend stores schedules');
  return { t0, backend, client, store };
}

describe('schedule ticks racing', () => {
  it('a tick that loses the compare-and-set sends none of its fires', async () => {
    const { t0, backend, client, store } = setup();
    const ref = taskRef<[], void>('race', 'beat');
    await client.schedules.upsert('s', { everyMs: 1000, graceMs: 500, catchup: { windowMs: 2500 } }, ref);
    const stored = await store.readSchedule('s');
    const gen = parseRecord((stored as { data: string }).data, 's').gen;
    const ticks = new ScheduleTicks({ backend, logger: silentLogger, client: () => client, emit: () => undefined });

    // Every process was down for 10 s. Tick A (the overdue one, slot t0+1 s) plans at t0+10 s: its
    // window takes the fires from t0+7.5 s on. Before its write lands, tick B (revived, slot t0+11 s)
    // runs at t0+11.5 s and writes first: its window starts at t0+9 s.
    vi.setSystemTime(t0 + 10_000);
    const write = store.writeSchedule.bind(store);
    let raced = false;
    store.writeSchedule = async (name, data, rev) => {
      if (!raced) {
        raced = true;
        vi.setSystemTime(t0 + 11_500);
        expect(await ticks.tick('s', gen, t0 + 11_000)).toBe('ticked');
      }
      return write(name, data, rev);
    };
    expect(await ticks.tick('s', gen, t0 + 1000)).toBe('covered');
    expect(raced).toBe(true);

    const info = await client.schedules.get('s');
    const sent: number[] = [];
    for (let at = t0; at <= t0 + 12_000; at += 1000) if ((await backend.read(fireId('s', at))) !== null) sent.push(at);
    expect(sent).toEqual([t0 + 9000, t0 + 10_000, t0 + 11_000]);
    expect(info?.fires).toBe(sent.length);
    await client.close();
  });

  it('a later tick sends the previous plan again only while it is marked unsent', async () => {
    const { t0, backend, client, store } = setup();
    await client.schedules.upsert('s', { everyMs: 1000 }, taskRef<[], void>('race', 'beat'));
    const read = async (): Promise<{ rev: number; rec: ReturnType<typeof parseRecord> }> => {
      const st = (await store.readSchedule('s')) as { rev: number; data: string };
      return { rev: st.rev, rec: parseRecord(st.data, 's') };
    };
    const ticks = new ScheduleTicks({ backend, logger: silentLogger, client: () => client, emit: () => undefined });
    const { rec } = await read();
    vi.setSystemTime(t0 + 1000);
    expect(await ticks.tick('s', rec.gen, t0 + 1000)).toBe('ticked');
    expect((await read()).rec.lastTick).toMatchObject({ slot: t0 + 1000, fires: [t0 + 1000] });
    expect((await read()).rec.lastTick?.unsent).toBeUndefined();

    // Its fire's state has expired by the next tick: the fire is not sent a second time.
    await backend.delete(fireId('s', t0 + 1000));
    vi.setSystemTime(t0 + 2000);
    expect(await ticks.tick('s', rec.gen, t0 + 2000)).toBe('ticked');
    expect(await backend.read(fireId('s', t0 + 1000))).toBeNull();

    // A process that died between writing its plan and sending it left the plan marked: the next
    // tick sends its fire before planning its own.
    const now = await read();
    await store.writeSchedule('s', JSON.stringify({ ...now.rec, lastTick: { ...now.rec.lastTick, unsent: true } }), now.rev);
    await backend.delete(fireId('s', t0 + 2000));
    vi.setSystemTime(t0 + 3000);
    expect(await ticks.tick('s', rec.gen, t0 + 3000)).toBe('ticked');
    expect(await backend.read(fireId('s', t0 + 2000))).not.toBeNull();
    expect(await backend.read(fireId('s', t0 + 3000))).not.toBeNull();
    await client.close();
  });
});
