/**
 * `tasuki/metrics`: after a run with successes, retries, failures and dead letters (memory and
 * Redis), the metrics scraped over HTTP match the run's counts; labels stay bounded; a queue-depth
 * read that hangs does not hang the scrape.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { Client, Server, silentLogger, type Broker, type Backend, type QueueCounts, type TaskCtl } from '../src/index.js';
import { MemoryBroker } from '../brokers/memory.js';
import { RedisBroker } from '../brokers/redis.js';
import { RedisBackend } from '../backends/redis.js';
import { TasukiMetrics, UNKNOWN_LABEL, OTHER_LABEL } from '../metrics/index.js';
import { redisNamespace } from './helpers/redis.js';
import { until } from './core/suite.js';

/** Samples of a text exposition: `name{labels}` → value. */
function parse(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

/** Serves `metrics.handler` on a loopback port; returns a scrape function and a closer. */
async function serve(metrics: TasukiMetrics): Promise<{ scrape(path?: string): Promise<{ status: number; type: string | null; samples: Map<string, number> }>; close(): Promise<void> }> {
  const http: HttpServer = createServer(metrics.handler);
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  const { port } = http.address() as AddressInfo;
  return {
    async scrape(path = '/metrics') {
      const res = await fetch(`http://127.0.0.1:${port}${path}`);
      return { status: res.status, type: res.headers.get('content-type'), samples: parse(await res.text()) };
    },
    close: () => new Promise<void>((r) => http.close(() => r())),
  };
}

/** A sample's value; a counter series never incremented is absent (prom-client creates it on the first increment). */
const sample = (s: Map<string, number>, name: string, labels: Record<string, string>): number | undefined =>
  s.get(`${name}{${Object.entries(labels).map(([k, v]) => `${k}="${v}"`).join(',')}}`);

/** Runs the scenario on a broker/backend pair and checks the scraped metrics against it. */
async function scenario(broker: Broker | undefined, backend: Backend | undefined): Promise<void> {
  const group = `m-${randomUUID().slice(0, 8)}`;
  const metrics = new TasukiMetrics();
  const server = new Server({ broker, backend, logger: silentLogger, instrumentation: metrics, unknownTaskRetryMs: 0, abortPollMs: 20 });
  const ok = server.add(group, 'ok', (x: number) => x * 2);
  const tries = new Map<number, number>();
  const flaky = server.add(group, 'flaky', (k: number) => {
    const n = (tries.get(k) ?? 0) + 1;
    tries.set(k, n);
    if (n === 1) throw new Error('first run fails');
    return n;
  });
  const bad = server.add(group, 'bad', (): number => {
    throw new Error('always');
  });
  server.add(group, 'typed', (a: number) => a, { args: ['number'] });
  const long = server.add(
    group,
    'long',
    (ctl: TaskCtl) => new Promise<never>((_, reject) => ctl.signal.addEventListener('abort', () => reject(ctl.signal.reason as Error))),
    { ctl: true },
  );
  await server.run(group, 4);
  const http = await serve(metrics);
  try {
    const client = server.client();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await client.send(ok, i));
    ids.push(...(await client.sendMany(ok, [[10], [11], [12]])));
    const retry1 = client.with({ retryCount: 1, backoff: { type: 'fixed', delayMs: 0 } });
    for (let k = 0; k < 3; k++) ids.push(await retry1.send(flaky, k));
    const noRetry = client.with({ retryCount: 0 });
    for (let i = 0; i < 2; i++) ids.push(await noRetry.send(bad));
    for (let i = 0; i < 2; i++) ids.push(await client.send(group, 'typed', 'not a number'));
    ids.push(await client.send(group, 'ghost'));
    // Expires while delayed: due after its expireAt.
    ids.push(await client.with({ runAfter: 300, expireAt: Date.now() + 100 }).send(ok, 99));
    // Aborted while running.
    const running = await client.send(long);
    await until(async () => ((await client.getStatus(running))?.status === 'running' ? true : null), 20_000, 'long task running');
    expect(await client.abort(running)).toBe(true);
    ids.push(running);
    for (const id of ids) await client.getResult(id, 20_000);

    const L = (task: string): Record<string, string> => ({ group, task });
    const U = { group, task: UNKNOWN_LABEL };
    // Outcome events land after the states read above (dead letters after the failure state): wait for the last ones.
    const { samples: s, status, type } = await until(async () => {
      const r = await http.scrape();
      const c = (name: string, labels: Record<string, string>): number | undefined => sample(r.samples, name, labels);
      const last = c('tasuki_tasks_dead_lettered_total', U) === 1 && c('tasuki_tasks_dead_lettered_total', L('typed')) === 2 && c('tasuki_tasks_aborted_total', L('long')) === 1;
      return last && c('tasuki_tasks_expired_total', L('ok')) === 1 ? r : null;
    }, 20_000, 'dead letters counted');
    expect(status).toBe(200);
    expect(type).toContain('text/plain');

    expect(sample(s, 'tasuki_tasks_sent_total', L('ok'))).toBe(9);
    expect(sample(s, 'tasuki_tasks_sent_total', L('long'))).toBe(1);
    expect(sample(s, 'tasuki_tasks_sent_total', L('flaky'))).toBe(3);
    expect(sample(s, 'tasuki_tasks_sent_total', L('bad'))).toBe(2);
    expect(sample(s, 'tasuki_tasks_sent_total', L('typed'))).toBe(2);
    // A name this process sends but nobody registered keeps its label (within the cap).
    expect(sample(s, 'tasuki_tasks_sent_total', L('ghost'))).toBe(1);

    expect(sample(s, 'tasuki_tasks_started_total', L('ok'))).toBe(8);
    expect(sample(s, 'tasuki_tasks_started_total', L('flaky'))).toBe(6);
    expect(sample(s, 'tasuki_tasks_started_total', L('bad'))).toBe(2);
    expect(sample(s, 'tasuki_tasks_succeeded_total', L('ok'))).toBe(8);
    expect(sample(s, 'tasuki_tasks_succeeded_total', L('flaky'))).toBe(3);
    expect(sample(s, 'tasuki_tasks_retried_total', L('flaky'))).toBe(3);
    expect(sample(s, 'tasuki_tasks_failed_total', L('bad'))).toBe(2);
    expect(sample(s, 'tasuki_tasks_failed_total', L('typed'))).toBe(2);
    expect(sample(s, 'tasuki_tasks_failed_total', U)).toBe(1);
    expect(sample(s, 'tasuki_tasks_dead_lettered_total', L('bad'))).toBeUndefined();
    expect(sample(s, 'tasuki_tasks_expired_total', L('ok'))).toBe(1);
    expect(sample(s, 'tasuki_tasks_started_total', L('long'))).toBe(1);
    expect(sample(s, 'tasuki_tasks_aborted_total', L('long'))).toBe(1);
    // Nothing the run did not do.
    for (const t of ['flaky', 'bad', 'typed']) expect(sample(s, 'tasuki_tasks_expired_total', L(t))).toBeUndefined();
    for (const t of ['ok', 'flaky', 'bad', 'typed']) expect(sample(s, 'tasuki_tasks_aborted_total', L(t))).toBeUndefined();
    expect(sample(s, 'tasuki_tasks_failed_total', L('long'))).toBeUndefined();
    expect(sample(s, 'tasuki_tasks_failed_total', L('ok'))).toBeUndefined();

    // Run time: every run (also those refused for bad arguments); wait: first runs only.
    expect(sample(s, 'tasuki_task_run_seconds_count', L('ok'))).toBe(8);
    expect(sample(s, 'tasuki_task_run_seconds_count', L('flaky'))).toBe(6);
    expect(sample(s, 'tasuki_task_run_seconds_count', L('typed'))).toBe(2);
    expect(sample(s, 'tasuki_task_wait_seconds_count', L('ok'))).toBe(8);
    expect(sample(s, 'tasuki_task_wait_seconds_count', L('flaky'))).toBe(3);
    expect(sample(s, 'tasuki_task_run_seconds_bucket', { ...L('ok'), le: '+Inf' })).toBe(8);

    expect(sample(s, 'tasuki_worker_slots_total', { group })).toBe(4);
    expect(sample(s, 'tasuki_worker_slots_busy', { group })).toBe(0);
    expect(sample(s, 'tasuki_queue_depth', { group, state: 'dead' })).toBe(3);
    expect(sample(s, 'tasuki_queue_depth', { group, state: 'ready' })).toBe(0);
    expect(sample(s, 'tasuki_queue_depth', { group, state: 'in_flight' })).toBe(0);
    expect(sample(s, 'tasuki_queue_depth', { group, state: 'delayed' })).toBe(0);

    expect((await http.scrape('/other')).status).toBe(404);
    await server.broker.purge(group);
  } finally {
    await http.close();
    await server.shutdown(5000);
  }
}

describe('tasuki/metrics', () => {
  it('scraped over HTTP, matches a run on the memory broker and backend', async () => {
    await scenario(undefined, undefined);
  });

  describe('on Redis', () => {
    const ns = redisNamespace('metrics');
    afterAll(async () => {
      await ns.sweep();
      await ns.quit();
    });
    it('scraped over HTTP, matches a run on the Redis broker and backend', async () => {
      await scenario(new RedisBroker({ prefix: ns.prefix }), new RedisBackend({ prefix: ns.prefix }));
    });
  });

  it('labels stay bounded: undeclared sent names past the cap count as _other', async () => {
    const metrics = new TasukiMetrics({ maxUndeclaredTasks: 2, tasks: [{ group: 'g', name: 'declared' }] });
    const client = new Client({ logger: silentLogger, instrumentation: metrics });
    for (const name of ['declared', 'a', 'b', 'c', 'd', 'a']) await client.send('g', name);
    const s = parse(await metrics.metrics());
    expect(sample(s, 'tasuki_tasks_sent_total', { group: 'g', task: 'declared' })).toBe(1);
    expect(sample(s, 'tasuki_tasks_sent_total', { group: 'g', task: 'a' })).toBe(2);
    expect(sample(s, 'tasuki_tasks_sent_total', { group: 'g', task: 'b' })).toBe(1);
    expect(sample(s, 'tasuki_tasks_sent_total', { group: OTHER_LABEL, task: OTHER_LABEL })).toBe(2);
    expect(sample(s, 'tasuki_tasks_sent_total', { group: 'g', task: 'c' })).toBeUndefined();
    await client.close();
  });

  it('a send that fails is not counted as sent', async () => {
    class Refusing extends MemoryBroker {
      override publish(): Promise<void> {
        return Promise.reject(new Error('refused'));
      }
    }
    const metrics = new TasukiMetrics({ tasks: [{ group: 'g', name: 't' }] });
    const client = new Client({ broker: new Refusing(), logger: silentLogger, instrumentation: metrics });
    await expect(client.send('g', 't')).rejects.toThrow('refused');
    expect(sample(parse(await metrics.metrics()), 'tasuki_tasks_sent_total', { group: 'g', task: 't' })).toBeUndefined();
    await client.close();
  });

  it('a broker whose counts hang: the scrape ends within the timeout, without that group, and counts the error; one call at a time', async () => {
    let calls = 0;
    class Hanging extends MemoryBroker {
      override counts(): Promise<QueueCounts> {
        calls++;
        return new Promise<QueueCounts>(() => undefined);
      }
    }
    const metrics = new TasukiMetrics({ countsTimeoutMs: 50 }).watchQueues(new Hanging(), ['slow']).watchQueues(new MemoryBroker(), ['fast']);
    for (let i = 1; i <= 2; i++) {
      const s = parse(await metrics.metrics());
      expect(sample(s, 'tasuki_queue_depth', { group: 'slow', state: 'ready' })).toBeUndefined();
      expect(sample(s, 'tasuki_queue_depth', { group: 'fast', state: 'ready' })).toBe(0);
      expect(sample(s, 'tasuki_queue_depth_errors_total', { group: 'slow', reason: 'timeout' })).toBe(i);
    }
    // The first call is still pending: the second scrape waited on it instead of starting another.
    expect(calls).toBe(1);
  });
});
