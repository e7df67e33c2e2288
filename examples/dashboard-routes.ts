/**
 * The dashboard next to an application's own routes (Redis): the handler's third argument,
 * `next`, is called for every path that is not the dashboard's — the Express middleware shape, so
 * `app.use('/ops/tasuki', handler)` mounts it the same way in Express.
 *   DASHBOARD_USER=ops DASHBOARD_PASSWORD=correct-horse npx tsx examples/dashboard-routes.ts
 * then open http://127.0.0.1:8080/ops/tasuki/ (the browser asks for the user and password);
 * http://127.0.0.1:8080/health and /orders are the application's. PORT overrides 8080.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client, consoleLogger } from '../src/index.js';
import { RedisBroker } from '../brokers/redis.js';
import { RedisBackend } from '../backends/redis.js';
import { dashboard } from '../dashboard/index.js';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const client = new Client({ broker: new RedisBroker({ connection: url }), backend: new RedisBackend({ connection: url }) });
const tasuki = dashboard({
  client,
  auth: { basic: { username: process.env.DASHBOARD_USER ?? 'ops', password: process.env.DASHBOARD_PASSWORD ?? '' } },
  basePath: '/ops/tasuki',
  readOnly: process.env.DASHBOARD_READ_ONLY === '1',
  logger: consoleLogger('info'),
});

/** The application's own routes. */
function app(req: IncomingMessage, res: ServerResponse): void {
  res.setHeader('content-type', 'application/json');
  if (req.url === '/health') return void res.end(JSON.stringify({ ok: true }));
  if (req.url === '/orders') return void res.end(JSON.stringify([{ id: 1, item: 'tea' }]));
  res.statusCode = 404;
  res.end(JSON.stringify({ error: 'not found' }));
}

const server = createServer((req, res) => tasuki(req, res, () => app(req, res)));
server.listen(Number(process.env.PORT ?? 8080), '127.0.0.1', () => {
  console.log(`app on http://127.0.0.1:${(server.address() as AddressInfo).port}/ (dashboard under /ops/tasuki/)`);
});

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    server.close();
    server.closeAllConnections();
    void client.close();
  });
}
