/**
 * Worker process on Redis (YTask's server demo):  npx tsx examples/server.ts
 * Then, in another terminal:                        npx tsx examples/client.ts
 * REDIS_URL overrides redis://127.0.0.1:6379.
 */
import { Server, consoleLogger } from '../src/index.js';
import { RedisBroker } from '../brokers/redis.js';
import { RedisBackend } from '../backends/redis.js';
import { add, appendUser, flaky, slow, now } from './tasks.js';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const server = new Server({
  broker: new RedisBroker({ connection: url }),
  backend: new RedisBackend({ connection: url }),
  logger: consoleLogger('info'),
  statusExpires: 60 * 5,
  resultExpires: 60 * 5,
});

server.add('group1', 'add', add);
server.add('group1', 'append_user', appendUser);
server.add('group1', 'flaky', flaky, { ctl: true });
server.add('group1', 'slow', slow, { ctl: true });
server.add('group1', 'now', now);

server.on('retrying', (e) => console.log(`task ${e.name} ${e.id} failed (${e.error.message}); retry in ${e.delayMs} ms`));

await server.run('group1', 3);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    // Stop fetching, give running tasks 10 s, hand back the rest to the broker.
    void server.shutdown(10_000).then(() => process.exit(0));
  });
}
