/**
 * The bee-queue adapter of the benchmark (see `systems.ts` for the interface): no stored results,
 * completion counted from its events (with its stored status as the fallback of a lost event).
 */
import { EXPECTED_RESULT, REDIS_HOST, REDIS_PORT, type BenchSystem } from './systems.js';

/** bee-queue 2 on the benchmark's Redis, keys under `prefix`. */
export async function beeQueueSystem(prefix: string): Promise<BenchSystem> {
  const BeeQueue = (await import('bee-queue')).default;
  type Q = InstanceType<typeof BeeQueue<string>>;
  const redis = { host: REDIS_HOST, port: REDIS_PORT };
  const producers = new Map<string, Q>();
  const workers: Q[] = [];
  let lostEvents = 0;
  const producer = (name: string): Q => {
    let queue = producers.get(name);
    if (!queue) {
      queue = new BeeQueue(name, { prefix, redis, isWorker: false, getEvents: true, storeJobs: true, removeOnSuccess: false });
      queue.on('error', () => undefined);
      producers.set(name, queue);
    }
    return queue;
  };
  const system: BenchSystem = {
    system: 'bee-queue',
    broker: 'redis',
    backend: 'none',
    get note() {
      return `no stored results: completion counted only${lostEvents > 0 ? `; ${lostEvents} completion event(s) lost` : ''}`;
    },
    async sendOne(queue, payload) {
      const job = await producer(queue).createJob(payload).save();
      return String(job.id);
    },
    async sendBulk(queue, payloads) {
      const p = producer(queue);
      const ids: string[] = [];
      for (let i = 0; i < payloads.length; i += 1000) {
        const jobs = payloads.slice(i, i + 1000).map((x) => p.createJob(x));
        const errors = await p.saveAll(jobs);
        if (errors.size > 0) throw new Error(`bee-queue saveAll failed for ${errors.size} job(s)`);
        for (const j of jobs) ids.push(String(j.id));
      }
      return ids;
    },
    async waiting(queue) {
      return (await producer(queue).checkHealth()).waiting;
    },
    async startWorker(queue, concurrency, onDone) {
      const worker = new BeeQueue(queue, { prefix, redis, isWorker: true, getEvents: false, sendEvents: true, removeOnSuccess: false });
      worker.on('error', () => undefined);
      worker.on('succeeded', () => onDone(true));
      worker.on('failed', (_job, err) => onDone(false, err));
      workers.push(worker);
      await worker.ready();
      worker.process(concurrency, async (job) => (job.data as string).length);
    },
    async stopWorkers() {
      await Promise.all(workers.splice(0).map((w) => w.close(5000)));
    },
    async verify(queue) {
      const h = await producer(queue).checkHealth();
      return { completed: h.succeeded, resultsStored: null, failed: h.failed };
    },
    async prepareLatency(queue) {
      await producer(queue).ready();
    },
    async roundTrip(queue, payload) {
      const job = await producer(queue).createJob(payload).save();
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          // bee-queue's pub/sub events can be lost: fall back to its stored status.
          producer(queue)
            .getJob(job.id)
            .then((j) => {
              if (j?.status === 'succeeded') {
                lostEvents++;
                resolve();
              } else reject(new Error(`bee-queue job ${job.id} not finished after 10 s (${j?.status})`));
            }, reject);
        }, 10_000);
        job.on('succeeded', (value: unknown) => {
          clearTimeout(timer);
          if (value === EXPECTED_RESULT) resolve();
          else reject(new Error(`job ${job.id} returned ${String(value)}`));
        });
        job.on('failed', (err: Error) => {
          clearTimeout(timer);
          reject(err);
        });
      });
    },
    async close() {
      await Promise.all(workers.splice(0).map((w) => w.close(5000)));
      for (const p of producers.values()) {
        await p.destroy().catch(() => undefined);
        await p.close();
      }
    },
  };
  return system;
}
