/**
 * The raw-protocol row of the benchmark: a plain ioredis loop doing the work of a reliable queue with
 * stored results, as the floor the queue libraries are measured against. Per task:
 * - enqueue: `LPUSH queue message` (the message is JSON: id, name, arguments);
 * - process: `LMOVE queue active` (a blocking `BLMOVE` on its own connection only when the queue is
 *   empty), then in one round trip `SET result EX`, `PUBLISH` of a completion notice (id and result)
 *   and `LREM active` (the ack).
 * No states, retries, leases or expiries: it is what the same work costs with nothing else.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { EXPECTED_RESULT, REDIS_HOST, REDIS_PORT, type BenchSystem } from './systems.js';

const RESULT_TTL_S = 3600;

/** The raw ioredis system: keys `prefix:q:<queue>`, `prefix:q:<queue>:active`, `prefix:r:<id>`; notices on `prefix:done`. */
export function rawRedisSystem(prefix: string): BenchSystem {
  const connect = (): Redis => new Redis({ host: REDIS_HOST, port: REDIS_PORT, maxRetriesPerRequest: null });
  const cmd = connect();
  const queueKey = (q: string): string => `${prefix}:q:${q}`;
  const resultKey = (id: string): string => `${prefix}:r:${id}`;
  const doneChannel = `${prefix}:done`;
  const stops: Array<() => Promise<void>> = [];
  const waiters = new Map<string, (value: string) => void>();
  let sub: Redis | undefined;

  const message = (payload: string): { id: string; text: string } => {
    const id = randomUUID();
    return { id, text: JSON.stringify({ id, name: 'noop', args: [payload] }) };
  };

  return {
    system: 'raw ioredis',
    broker: 'redis',
    backend: 'redis',
    note: 'no states, retries, leases or expiries',
    async sendOne(queue, payload) {
      const m = message(payload);
      await cmd.lpush(queueKey(queue), m.text);
      return m.id;
    },
    async sendBulk(queue, payloads) {
      const ms = payloads.map(message);
      for (let i = 0; i < ms.length; i += 1000) await cmd.lpush(queueKey(queue), ...ms.slice(i, i + 1000).map((m) => m.text));
      return ms.map((m) => m.id);
    },
    async waiting(queue) {
      return cmd.llen(queueKey(queue));
    },
    async startWorker(queue, concurrency, onDone) {
      // One command connection shared by every slot; one blocking connection used only while the queue is empty.
      const work = connect();
      const blocking = connect();
      const from = queueKey(queue);
      const active = `${from}:active`;
      let running = true;
      const idle: Array<(m: string | null) => void> = [];
      let wakeBlocker: (() => void) | undefined;
      const handle = async (text: string): Promise<void> => {
        const m = JSON.parse(text) as { id: string; args: [string] };
        const value = JSON.stringify(m.args[0].length);
        const replies = (await work.pipeline().set(resultKey(m.id), value, 'EX', RESULT_TTL_S).publish(doneChannel, `${m.id}\n${value}`).lrem(active, 1, text).exec()) ?? [];
        const err = replies.find(([e]) => e !== null)?.[0];
        onDone(err === undefined, err ?? undefined);
      };
      const slot = async (): Promise<void> => {
        while (running) {
          let text: string | null = await work.lmove(from, active, 'RIGHT', 'LEFT');
          if (text === null) {
            if (!running) return;
            text = await new Promise<string | null>((resolve) => {
              idle.push(resolve);
              wakeBlocker?.();
            });
            if (text === null) continue;
          }
          await handle(text);
        }
      };
      const blocker = async (): Promise<void> => {
        while (running) {
          if (idle.length === 0) {
            await new Promise<void>((r) => (wakeBlocker = r));
            wakeBlocker = undefined;
            continue;
          }
          const text = await blocking.blmove(from, active, 'RIGHT', 'LEFT', 1).catch(() => null);
          if (text !== null) idle.shift()?.(text);
        }
      };
      const loops = [...Array.from({ length: concurrency }, slot), blocker()];
      stops.push(async () => {
        running = false;
        wakeBlocker?.();
        for (const w of idle.splice(0)) w(null);
        blocking.disconnect();
        await Promise.allSettled(loops);
        await work.quit();
      });
    },
    async stopWorkers() {
      await Promise.all(stops.splice(0).map((s) => s()));
    },
    async verify(_queue, ids) {
      let resultsStored = 0;
      for (let i = 0; i < ids.length; i += 1000) {
        const values = await cmd.mget(...ids.slice(i, i + 1000).map(resultKey));
        for (const v of values) if (v !== null && JSON.parse(v) === EXPECTED_RESULT) resultsStored++;
      }
      return { completed: resultsStored, resultsStored, failed: 0 };
    },
    async prepareLatency() {
      sub = connect();
      sub.on('message', (_channel: string, text: string) => {
        const nl = text.indexOf('\n');
        const id = text.slice(0, nl);
        waiters.get(id)?.(text.slice(nl + 1));
        waiters.delete(id);
      });
      await sub.subscribe(doneChannel);
    },
    async roundTrip(queue, payload) {
      const m = message(payload);
      const done = new Promise<string>((resolve) => waiters.set(m.id, resolve));
      await cmd.lpush(queueKey(queue), m.text);
      const value = await done;
      if (JSON.parse(value) !== EXPECTED_RESULT) throw new Error(`raw task ${m.id} returned ${value}`);
    },
    async close() {
      await Promise.all(stops.splice(0).map((s) => s()));
      await sub?.quit();
      await cmd.quit();
    },
  };
}
