/**
 * The dashboard in an Express 5 application, mounted with `app.use` under /ops/tasuki (Redis):
 * Express strips the mount path from `req.url`, and the handler reads `req.originalUrl` for its
 * links, so no `basePath` is given. Paths under the mount that are not the dashboard's go to the
 * next route (`next`).
 *   DASHBOARD_TOKEN=$(openssl rand -hex 16) npx tsx examples/dashboard-express.ts
 * then open http://127.0.0.1:8080/ops/tasuki/ and sign in with the token; /health is the app's.
 * REDIS_URL overrides redis://127.0.0.1:6379; PORT overrides 8080 (0: any free port).
 */
import express from 'express';
import type { AddressInfo } from 'node:net';
import { Client, consoleLogger } from '../src/index.js';
import { RedisBroker } from '../brokers/redis.js';
import { RedisBackend } from '../backends/redis.js';
import { dashboard } from '../dashboard/index.js';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const token = process.env.DASHBOARD_TOKEN;
if (token === undefined) throw new Error('set DASHBOARD_TOKEN (at least 16 characters)');

const client = new Client({ broker: new RedisBroker({ connection: url }), backend: new RedisBackend({ connection: url }) });
const app = express();
app.get('/health', (_req, res) => {
  res.json({ ok: true });
});
app.use('/ops/tasuki', dashboard({ client, auth: { token }, logger: consoleLogger('info') }));

const server = app.listen(Number(process.env.PORT ?? 8080), '127.0.0.1', () => {
  console.log(`app on http://127.0.0.1:${(server.address() as AddressInfo).port}/ (dashboard under /ops/tasuki/)`);
});

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    server.close();
    server.closeAllConnections();
    void client.close();
  });
}
