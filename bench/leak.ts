/**
 * Leak check (`npm run bench -- --leak-check`, or `node --expose-gc --import tsx bench/leak.ts`):
 * one tasuki server and client on Redis process a warm-up batch, then the heap is measured after a
 * forced GC; then 100 000 more tasks are sent (in bulk batches) and processed; then the heap is
 * measured again after a forced GC, with the server still running. A growth of more than 10 % of the
 * baseline heap (at least 2 MB) fails the check.
 */
import type { TaskRef } from '../src/index.js';
import { deleteKeys, loadTasuki, REDIS_HOST, REDIS_PORT } from './systems.js';

const { Server, Client, silentLogger } = await loadTasuki<typeof import('../src/index.js')>('src/index.js');
const { RedisBroker } = await loadTasuki<typeof import('../brokers/redis.js')>('brokers/redis.js');
const { RedisBackend } = await loadTasuki<typeof import('../backends/redis.js')>('backends/redis.js');

interface LeakConfig {
  jobs: number;
  concurrency: number;
  prefix: string;
}

const gc = (globalThis as { gc?: () => void }).gc;

async function settle(): Promise<NodeJS.MemoryUsage> {
  for (let i = 0; i < 4; i++) {
    gc?.();
    await new Promise((r) => setTimeout(r, 100));
  }
  return process.memoryUsage();
}

const mb = (n: number): string => (n / 1024 / 1024).toFixed(1);

async function main(): Promise<void> {
  const cfg = JSON.parse(process.argv[2] ?? '{}') as Partial<LeakConfig>;
  const jobs = cfg.jobs ?? 100_000;
  const concurrency = cfg.concurrency ?? 50;
  const prefix = cfg.prefix ?? `tasuki-bench-${process.pid}-leak`;
  if (!gc) throw new Error('run with node --expose-gc');
  const connection = { host: REDIS_HOST, port: REDIS_PORT };
  const server = new Server({ broker: new RedisBroker({ prefix, connection }), backend: new RedisBackend({ prefix, connection }), logger: silentLogger });
  const client = new Client({ broker: new RedisBroker({ prefix, connection }), backend: new RedisBackend({ prefix, connection }), logger: silentLogger });
  const ref: TaskRef<[string], number> = server.add('leak', 'noop', (p: string) => p.length);
  let done = 0;
  let failed = 0;
  server.on('succeeded', () => done++);
  server.on('failed', () => failed++);
  await server.run('leak', concurrency);

  const runBatch = async (n: number): Promise<void> => {
    const start = done + failed;
    const args = Array.from({ length: 1000 }, () => ['x'.repeat(64)] as [string]);
    const deadline = Date.now() + 300_000;
    const waitUntil = async (finished: number): Promise<void> => {
      while (done + failed - start < finished) {
        if (Date.now() > deadline) throw new Error(`leak check: only ${done + failed - start} of ${finished} tasks finished`);
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    for (let sent = 0; sent < n; ) {
      const k = Math.min(1000, n - sent);
      await client.sendMany(ref, k === 1000 ? args : args.slice(0, k));
      sent += k;
      // Keep at most 5000 waiting: the measurement is about steady work, not a 100k-deep backlog.
      await waitUntil(sent - 5000);
    }
    await waitUntil(n);
  };

  try {
    await runBatch(5000);
    const before = await settle();
    const t = performance.now();
    await runBatch(jobs);
    const secs = (performance.now() - t) / 1000;
    const after = await settle();
    if (failed > 0) throw new Error(`${failed} task(s) failed`);
    const growth = after.heapUsed - before.heapUsed;
    const allowed = Math.max(2 * 1024 * 1024, before.heapUsed * 0.1);
    const ok = growth <= allowed;
    console.log(
      `leak check: ${jobs} tasks in ${secs.toFixed(1)} s (${Math.round(jobs / secs)}/s); heapUsed after GC ${mb(before.heapUsed)} MB before → ${mb(after.heapUsed)} MB after ` +
        `(${growth >= 0 ? '+' : ''}${mb(growth)} MB, allowed ${mb(allowed)}); rss ${mb(before.rss)} → ${mb(after.rss)} MB: ${ok ? 'no leak' : 'LEAK SUSPECTED'}`,
    );
    console.log(JSON.stringify({ check: 'leak', jobs, heap_before_mb: Number(mb(before.heapUsed)), heap_after_mb: Number(mb(after.heapUsed)), rss_before_mb: Number(mb(before.rss)), rss_after_mb: Number(mb(after.rss)), ok }));
    process.send?.({ ok, ...(ok ? { result: {} } : { error: `heap grew by ${mb(growth)} MB` }) });
  } finally {
    await server.shutdown(5000);
    await client.close();
    await deleteKeys(prefix);
  }
}

main().then(
  () => setTimeout(() => process.exit(0), 100).unref(),
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.send?.({ ok: false, error: err instanceof Error ? err.message : String(err) });
    setTimeout(() => process.exit(1), 100).unref();
  },
);
