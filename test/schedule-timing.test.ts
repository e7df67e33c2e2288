/**
 * Fire-time arithmetic of schedules (unit tests): the DST matrix over several IANA zones, interval
 * anchoring and bounds, and the tick planner (catch-up, overlap, limit).
 */
import { describe, expect, it } from 'vitest';
import { firesBetween, nextFireAfter, type Timing } from '../src/schedule/timing.js';
import { normalizeDefinition } from '../src/schedule/definition.js';
import { planTick } from '../src/schedule/plan.js';
import { jitterOf } from '../src/schedule/send.js';
import type { ScheduleRecord } from '../src/schedule/record.js';
import type { ScheduleDefinition } from '../src/schedule/types.js';

const cron = (expr: string, tz: string): Timing => ({ cron: expr, tz, everyMs: null, startAt: null, endAt: null });
const iso = (ms: number): string => new Date(ms).toISOString();
const between = (t: Timing, from: string, to: string): string[] => firesBetween(t, Date.parse(from), Date.parse(to), 1000).fires.map(iso);

describe('DST matrix (cron in IANA time zones)', () => {
  // [zone, expression, window start, window end, expected fires (UTC)]
  const matrix: Array<[string, string, string, string, string, string[]]> = [
    // Spring forward: the wall time does not exist that day; it fires once, at the next valid instant (03:00 local).
    ['gap', 'Europe/Paris', '30 2 * * *', '2026-03-28T00:00:00Z', '2026-03-30T12:00:00Z', ['2026-03-28T01:30:00.000Z', '2026-03-29T01:00:00.000Z', '2026-03-30T00:30:00.000Z']],
    ['gap', 'Europe/Paris', '0 2 * * *', '2026-03-28T12:00:00Z', '2026-03-29T12:00:00Z', ['2026-03-29T01:00:00.000Z']],
    ['gap', 'America/New_York', '30 2 * * *', '2026-03-07T12:00:00Z', '2026-03-09T12:00:00Z', ['2026-03-08T07:00:00.000Z', '2026-03-09T06:30:00.000Z']],
    ['gap', 'Europe/London', '15 1 * * *', '2026-03-28T00:00:00Z', '2026-03-30T00:00:00Z', ['2026-03-28T01:15:00.000Z', '2026-03-29T01:00:00.000Z']],
    ['gap', 'Australia/Sydney', '30 2 * * *', '2026-10-02T00:00:00Z', '2026-10-05T00:00:00Z', ['2026-10-02T16:30:00.000Z', '2026-10-03T16:00:00.000Z', '2026-10-04T15:30:00.000Z']],
    // A list of fixed times is fixed-time too (Vixie cron): 02:30 in the gap runs at 03:00, 14:30 as usual.
    ['gap', 'Europe/Paris', '30 2,14 * * *', '2026-03-28T23:00:00Z', '2026-03-29T22:00:00Z', ['2026-03-29T01:00:00.000Z', '2026-03-29T12:30:00.000Z']],
    // An interval expression keeps real time: its times inside the gap do not exist.
    ['gap', 'Europe/Paris', '*/20 2 * * *', '2026-03-28T23:00:00Z', '2026-03-29T03:00:00Z', []],
    // Fall back: the wall time exists twice; it fires once, at its first occurrence.
    ['repeat', 'Europe/Paris', '30 2 * * *', '2026-10-24T12:00:00Z', '2026-10-26T12:00:00Z', ['2026-10-25T00:30:00.000Z', '2026-10-26T01:30:00.000Z']],
    ['repeat', 'America/New_York', '30 1 * * *', '2026-10-31T12:00:00Z', '2026-11-02T12:00:00Z', ['2026-11-01T05:30:00.000Z', '2026-11-02T06:30:00.000Z']],
    ['repeat', 'Europe/London', '15 1 * * *', '2026-10-24T12:00:00Z', '2026-10-26T12:00:00Z', ['2026-10-25T00:15:00.000Z', '2026-10-26T01:15:00.000Z']],
    ['repeat', 'Australia/Sydney', '30 2 * * *', '2026-04-04T00:00:00Z', '2026-04-06T00:00:00Z', ['2026-04-04T15:30:00.000Z', '2026-04-05T16:30:00.000Z']],
    ['repeat', 'Europe/Paris', '0 2,14 * * *', '2026-10-24T22:00:00Z', '2026-10-25T22:00:00Z', ['2026-10-25T00:00:00.000Z', '2026-10-25T13:00:00.000Z']],
    // An interval expression fires in both passes of the repeated hour.
    ['repeat', 'Europe/Paris', '*/30 2 * * *', '2026-10-24T23:00:00Z', '2026-10-25T03:00:00Z', ['2026-10-25T00:00:00.000Z', '2026-10-25T00:30:00.000Z', '2026-10-25T01:00:00.000Z', '2026-10-25T01:30:00.000Z']],
    // Outside transitions and in a zone without DST: plain local time.
    ['plain', 'Europe/Paris', '0 3 * * *', '2026-12-01T00:00:00Z', '2026-12-03T00:00:00Z', ['2026-12-01T02:00:00.000Z', '2026-12-02T02:00:00.000Z']],
    ['plain', 'Asia/Kolkata', '0 9 * * *', '2026-03-28T00:00:00Z', '2026-03-30T00:00:00Z', ['2026-03-28T03:30:00.000Z', '2026-03-29T03:30:00.000Z']],
    ['plain', 'UTC', '0 0 1 * *', '2026-01-15T00:00:00Z', '2026-04-15T00:00:00Z', ['2026-02-01T00:00:00.000Z', '2026-03-01T00:00:00.000Z', '2026-04-01T00:00:00.000Z']],
  ];
  it.each(matrix)('%s: %s %s', (_kind, tz, expr, from, to, expected) => {
    expect(between(cron(expr, tz), from, to)).toEqual(expected);
  });

  it('an hourly expression keeps real time through both transitions (23 and 25 fires that day)', () => {
    const hourly = cron('0 * * * *', 'Europe/Paris');
    const spring = firesBetween(hourly, Date.parse('2026-03-28T23:00:00Z'), Date.parse('2026-03-29T22:00:00Z'), 100).fires;
    const autumn = firesBetween(hourly, Date.parse('2026-10-24T22:00:00Z'), Date.parse('2026-10-25T23:00:00Z'), 100).fires;
    expect(spring).toHaveLength(23);
    expect(autumn).toHaveLength(25);
    for (const fires of [spring, autumn]) for (let i = 1; i < fires.length; i++) expect((fires[i] as number) - (fires[i - 1] as number)).toBe(3_600_000);
  });

  it('no fire time is produced twice around a transition', () => {
    for (const tz of ['Europe/Paris', 'America/New_York', 'Australia/Sydney']) {
      for (const [from, to] of [['2026-03-27T00:00:00Z', '2026-04-06T00:00:00Z'], ['2026-10-02T00:00:00Z', '2026-11-03T00:00:00Z']] as const) {
        const fires = firesBetween(cron('*/15 * * * *', tz), Date.parse(from), Date.parse(to), 100_000).fires;
        expect(fires.length).toBeGreaterThan(100);
        expect(new Set(fires).size).toBe(fires.length);
        for (let i = 1; i < fires.length; i++) expect((fires[i] as number) - (fires[i - 1] as number)).toBe(900_000);
      }
    }
  });
});

describe('intervals and bounds', () => {
  const every = (everyMs: number, startAt: number | null = null, endAt: number | null = null): Timing => ({ cron: null, tz: null, everyMs, startAt, endAt });
  it('fires at multiples of everyMs since the epoch, or since startAt', () => {
    expect(nextFireAfter(every(60_000), 90_000)).toBe(120_000);
    expect(nextFireAfter(every(60_000), 120_000)).toBe(180_000);
    expect(nextFireAfter(every(60_000, 5_000), 0)).toBe(5_000);
    expect(nextFireAfter(every(60_000, 5_000), 5_000)).toBe(65_000);
  });
  it('startAt is inclusive and endAt exclusive', () => {
    expect(firesBetween(every(1000, 3000, 6000), 0, 100_000, 100).fires).toEqual([3000, 4000, 5000]);
    const t: Timing = { ...cron('0 * * * *', 'UTC'), startAt: Date.parse('2026-01-01T02:00:00Z'), endAt: Date.parse('2026-01-01T04:00:00Z') };
    expect(between(t, '2026-01-01T00:00:00Z', '2026-01-02T00:00:00Z')).toEqual(['2026-01-01T02:00:00.000Z', '2026-01-01T03:00:00.000Z']);
  });
  it('rejects a bad expression, an unknown zone and a short interval with typed errors', () => {
    const ref = ['g', 't'] as const;
    expect(() => normalizeDefinition(...ref, { cron: 'not a cron' }, [])).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
    expect(() => normalizeDefinition(...ref, { cron: '0 3 * * *', tz: 'Mars/Olympus' }, [])).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
    expect(() => normalizeDefinition(...ref, { everyMs: 10 }, [])).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
    expect(() => normalizeDefinition(...ref, { everyMs: 1000, cron: '* * * * *' } as unknown as ScheduleDefinition, [])).toThrow(expect.objectContaining({ code: 'ERR_INVALID_OPTION' }));
  });
});

describe('tick planner', () => {
  const S = 1000;
  const record = (d: ScheduleDefinition, cursor: number, extra: Partial<ScheduleRecord> = {}): ScheduleRecord => ({
    v: 1, name: 's', gen: 'g1', hash: 'h', def: normalizeDefinition('g', 't', d, []), paused: false, cursor,
    fires: 0, missed: 0, skipped: 0, lastFireAt: null, lastFireId: null, nextFireAt: null, buffered: null, lastTick: null,
    createdAt: 0, updatedAt: 0, ...extra,
  });
  // Down from just after 10 s to 20.3 s: fires 11..20 s are due; with graceMs 1 s, 11..19 are late and 20 is on time.
  const cases: Array<[string, ScheduleDefinition['catchup'], number[], number]> = [
    ['none', 'none', [20 * S], 9],
    ['latest', 'latest', [19 * S, 20 * S], 8],
    ['window 3.5 s', { windowMs: 3500 }, [17 * S, 18 * S, 19 * S, 20 * S], 6],
    ['window with max 2', { windowMs: 60_000, max: 2 }, [18 * S, 19 * S, 20 * S], 7],
  ];
  it.each(cases)('catchup %s', (_n, catchup, fires, missed) => {
    const p = planTick(record({ everyMs: S, graceMs: S, ...(catchup === undefined ? {} : { catchup }) }, 10 * S + 1), 11 * S, 20 * S + 300, false);
    expect(p.fires).toEqual(fires);
    expect(p.missed.count).toBe(missed);
    expect(p.next).toBe(21 * S);
    expect(p.cursor).toBe(20 * S + 300);
  });
  it('an on-time tick fires its own time only', () => {
    const p = planTick(record({ everyMs: S }, 10 * S), 11 * S, 11 * S + 20, false);
    expect(p).toMatchObject({ fires: [11 * S], missed: { count: 0 }, skipped: { count: 0 }, next: 12 * S });
  });
  it('a tick delivered before this clock says its time (skew) is believed', () => {
    expect(planTick(record({ everyMs: S }, 10 * S), 11 * S, 11 * S - 200, false).fires).toEqual([11 * S]);
  });
  it('overlap skip: skipped while the previous fire runs; allow: fires anyway', () => {
    expect(planTick(record({ everyMs: S, overlap: 'skip' }, 10 * S), 11 * S, 11 * S, true)).toMatchObject({ fires: [], skipped: { count: 1, latest: 11 * S } });
    expect(planTick(record({ everyMs: S, overlap: 'allow' }, 10 * S), 11 * S, 11 * S, true).fires).toEqual([11 * S]);
    expect(planTick(record({ everyMs: S, overlap: 'skip' }, 10 * S), 11 * S, 11 * S, false).fires).toEqual([11 * S]);
  });
  it('overlap buffer: one fire waits, the next ones are skipped until it ran', () => {
    const first = planTick(record({ everyMs: S, overlap: 'buffer' }, 10 * S), 11 * S, 11 * S, true);
    expect(first).toMatchObject({ fires: [], buffered: 11 * S, skipped: { count: 0 } });
    const second = planTick(record({ everyMs: S, overlap: 'buffer' }, 11 * S, { buffered: 11 * S }), 12 * S, 12 * S, false);
    expect(second).toMatchObject({ fires: [], buffered: null, skipped: { count: 1 } });
  });
  it('limit ends the schedule', () => {
    const p = planTick(record({ everyMs: S, limit: 3 }, 10 * S, { fires: 2 }), 11 * S, 11 * S, false);
    expect(p.fires).toEqual([11 * S]);
    expect(p.next).toBeNull();
    expect(planTick(record({ everyMs: S, limit: 3 }, 10 * S, { fires: 3 }), 11 * S, 11 * S, false).fires).toEqual([]);
  });
  it('a cron schedule after a long downtime counts its missed fires', () => {
    const p = planTick(record({ cron: '0 * * * *', tz: 'Europe/Paris', catchup: 'latest' }, Date.parse('2026-03-01T00:00:00Z')), Date.parse('2026-03-01T01:00:00Z'), Date.parse('2026-03-03T00:00:30Z'), false);
    expect(p.fires.map(iso)).toEqual(['2026-03-02T23:00:00.000Z', '2026-03-03T00:00:00.000Z']);
    expect(p.missed.count).toBe(46);
  });
});

describe('upsert types', () => {
  it('checks the arguments of the scheduled task at compile time', () => {
    const compileOnly = (c: import('../src/index.js').Client): void => {
      const ref = { group: 'g', name: 't' } as import('../src/index.js').TaskRef<[string, number], void>;
      void c.schedules.upsert('ok', { everyMs: 1000 }, ref, 'a', 1);
      // @ts-expect-error wrong argument type
      void c.schedules.upsert('bad', { everyMs: 1000 }, ref, 'a', 'b');
      // @ts-expect-error cron and everyMs together
      void c.schedules.upsert('both', { everyMs: 1000, cron: '* * * * *' }, ref, 'a', 1);
    };
    expect(typeof compileOnly).toBe('function');
  });
});

describe('jitter', () => {
  it('is derived from the fire id: the same for every sender, within [0, jitterMs)', () => {
    const values = Array.from({ length: 200 }, (_, i) => jitterOf(`s@${new Date(i * 1000).toISOString()}`, 5000));
    expect(values.every((v) => v >= 0 && v < 5000)).toBe(true);
    expect(new Set(values).size).toBeGreaterThan(100);
    expect(jitterOf('s@x', 5000)).toBe(jitterOf('s@x', 5000));
    expect(jitterOf('s@x', 0)).toBe(0);
  });
});
