/**
 * Schedules on Redis:  npx tsx examples/schedule.ts
 * Run it in several terminals at once: every process upserts the same schedules at boot and runs
 * their group, and each fire still runs once (no leader). REDIS_URL overrides redis://127.0.0.1:6379.
 */
import { Server, consoleLogger } from '../src/index.js';
import { RedisBroker } from '../brokers/redis.js';
import { RedisBackend } from '../backends/redis.js';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const server = new Server({
  broker: new RedisBroker({ connection: url }),
  backend: new RedisBackend({ connection: url }),
  logger: consoleLogger('info'),
});

const report = server.add('reports', 'nightly', (kind: string) => {
  console.log(`${new Date().toISOString()} building the ${kind} report in ${process.pid}`);
  return kind;
});
const heartbeat = server.add('reports', 'heartbeat', async () => {
  await new Promise((r) => setTimeout(r, 1500)); // slower than its interval: see overlap
  console.log(`${new Date().toISOString()} heartbeat in ${process.pid}`);
});

server.on('scheduleMissed', (e) => console.log(`schedule ${e.schedule}: ${e.count} fire(s) ${e.reason === 'late' ? 'missed' : 'skipped (still running)'}`));
await server.run('reports', 4);

const client = server.client();
// 03:00 in Paris, DST included; after a downtime the latest missed night still runs.
await client.schedules.upsert('nightly-report', { cron: '0 3 * * *', tz: 'Europe/Paris', catchup: 'latest' }, report, 'sales');
// Every second; a fire due while the previous one runs waits (at most one), the next ones are skipped.
await client.schedules.upsert('heartbeat', { everyMs: 1000, overlap: 'buffer', send: { retryCount: 0 } }, heartbeat);

for (const s of await client.schedules.list()) console.log(`${s.name}: next ${s.nextFireAt?.toISOString() ?? '—'}, fired ${s.fires}, missed ${s.missed}`);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void server.shutdown(5000).then(() => process.exit(0)));
}
