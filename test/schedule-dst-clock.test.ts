/**
 * DST end to end with an injected clock: a server, the memory broker and backend run on vitest's
 * fake timers set just before a Europe/Paris transition, and the clock is advanced through it. The
 * daily 02:30 fire happens once on both days: at 03:00 CEST in the spring-forward gap, and at the
 * first 02:30 in the repeated autumn hour.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Server, silentLogger, type TaskCtl } from '../src/index.js';

afterEach(() => {
  vi.useRealTimers();
});

async function runThrough(start: string, minutes: number, cron: string): Promise<string[]> {
  vi.useFakeTimers({ now: Date.parse(start), toFake: ['Date', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'setImmediate', 'clearImmediate'] });
  const server = new Server({ logger: silentLogger, fetchWaitMs: 1000 });
  const ids: string[] = [];
  const job = server.add('dst', 'job', (ctl: TaskCtl) => void ids.push(ctl.id), { ctl: true });
  await server.run('dst', 1);
  await server.client().schedules.upsert('paris-0230', { cron, tz: 'Europe/Paris' }, job);
  for (let i = 0; i < minutes; i++) await vi.advanceTimersByTimeAsync(60_000);
  const info = await server.client().schedules.get('paris-0230');
  const shutdown = server.shutdown(1000);
  await vi.advanceTimersByTimeAsync(2000);
  await shutdown;
  expect(info?.fires).toBe(ids.length);
  return ids;
}

describe('DST with an injected clock (Europe/Paris)', () => {
  it('spring forward: 02:30 does not exist on 2026-03-29; it fires once, at 03:00 CEST', async () => {
    // 01:50 CET, through the gap, to 04:10 CEST.
    const ids = await runThrough('2026-03-29T00:50:00Z', 80, '30 2 * * *');
    expect(ids).toEqual(['paris-0230@2026-03-29T01:00:00.000Z']);
  });
  it('fall back: 02:30 exists twice on 2026-10-25; it fires once, at the first', async () => {
    // 02:10 CEST, through both 02:30s, to 02:50 CET.
    const ids = await runThrough('2026-10-25T00:10:00Z', 100, '30 2 * * *');
    expect(ids).toEqual(['paris-0230@2026-10-25T00:30:00.000Z']);
  });
});
