/**
 * The dashboard in a plain Node `http` server, under /admin/tasuki (Redis):
 *   DASHBOARD_TOKEN=$(openssl rand -hex 16) npx tsx examples/dashboard-http.ts
 * then open http://127.0.0.1:8080/admin/tasuki/ and sign in with the token.
 * REDIS_URL overrides redis://127.0.0.1:6379; PORT overrides 8080 (0: any free port).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client, consoleLogger } from '../src/index.js';
import { RedisBroker } from '../brokers/redis.js';
import { RedisBackend } from '../backends/redis.js';
import { dashboard } from '../dashboard/index.js';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const token = process.env.DASHBOARD_TOKEN;
if (token === undefined) throw new Error('set DASHBOARD_TOKEN (at least 16 characters)');

const client = new Client({ broker: new RedisBroker({ connection: url }), backend: new RedisBackend({ connection: url }) });
const handler = dashboard({ client, auth: { token }, basePath: '/admin/tasuki', logger: consoleLogger('info') });

const server = createServer((req, res) => handler(req, res)); // paths outside /admin/tasuki answer 404
server.listen(Number(process.env.PORT ?? 8080), '127.0.0.1', () => {
  console.log(`dashboard on http://127.0.0.1:${(server.address() as AddressInfo).port}/admin/tasuki/`);
});

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    server.close();
    server.closeAllConnections();
    void client.close();
  });
}
