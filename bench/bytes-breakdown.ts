/**
 * Where the bytes a task sends to Redis go: every command of a client (`send`, 1 in flight) and of a
 * worker (concurrency 50) on a private redis-server (`./private-redis.ts`), grouped by connection
 * and command (a script by its number of keys), with the text of its key names and of its other
 * arguments per task; the server's own input byte count (which adds the protocol framing) for
 * comparison. Rows under 0.005 calls per task are left out.
 *
 * `npx tsx bench/bytes-breakdown.ts [--tasks N (5000)]`
 */
import { Redis } from 'ioredis';
import { startPrivateRedis } from './private-redis.js';
import { PAYLOAD } from './round.js';
import { onRedisCommand } from './redis-command-hook.js';

/** Calls, key-name bytes and argument bytes per connection and command. */
const tally = new Map<string, [number, number, number]>();
let counting = false;

/** Counts the text of every command sent while {@link counting}. */
function countCommands(): void {
  onRedisCommand((connection, cmd) => {
    if (!counting) return;
    let key = `${connection.options.connectionName ?? '?'} ${cmd.name}`;
    const keyCount = cmd.name === 'evalsha' ? Number(cmd.args[1]) : 0;
    if (cmd.name === 'evalsha') key += ` (${keyCount} keys)`;
    const args = cmd.name === 'evalsha' ? cmd.args.slice(2) : cmd.args;
    const row = tally.get(key) ?? [0, 0, 0];
    row[0]++;
    args.forEach((a, i) => (row[i < keyCount ? 1 : 2] += Buffer.byteLength(String(a))));
    tally.set(key, row);
  });
}

async function inputBytes(info: Redis): Promise<number> {
  return Number(/total_net_input_bytes:(\d+)/.exec(await info.info('stats'))?.[1] ?? NaN);
}

function print(title: string, n: number, serverBytes: number): void {
  console.log(`\n${title}: ${(serverBytes / n).toFixed(0)} B per task reached the server\n`);
  console.log('| connection, command | calls per task | key names (B) | other arguments (B) |');
  console.log('|---|--:|--:|--:|');
  let sum = 0;
  for (const [key, [calls, keys, args]] of [...tally].sort()) {
    sum += (keys + args) / n;
    if (calls / n < 0.005) continue;
    console.log(`| ${key} | ${(calls / n).toFixed(2)} | ${(keys / n).toFixed(0)} | ${(args / n).toFixed(0)} |`);
  }
  console.log(`| all (text without framing) | | | ${sum.toFixed(0)} |`);
  tally.clear();
}

async function main(): Promise<void> {
  const i = process.argv.indexOf('--tasks');
  const n = i >= 0 ? Number(process.argv[i + 1]) : 5000;
  countCommands();
  const { Client, Server, silentLogger } = await import('../src/index.js');
  const { RedisBroker } = await import('../brokers/redis.js');
  const { RedisBackend } = await import('../backends/redis.js');
  const redis = await startPrivateRedis();
  const info = new Redis({ host: '127.0.0.1', port: redis.port });
  const connection = { host: '127.0.0.1', port: redis.port };
  const named = (connectionName: string): typeof connection & { connectionName: string } => ({ ...connection, connectionName });
  // A prefix as long as the cost runs' (`./cost-round.ts`).
  const prefix = 'bench0';
  const client = new Client({ broker: new RedisBroker({ prefix, connection, connectionName: 'client-broker' }), backend: new RedisBackend({ prefix, connection: named('client-backend') }), logger: silentLogger });
  const server = new Server({ broker: new RedisBroker({ prefix, connection, connectionName: 'worker-broker' }), backend: new RedisBackend({ prefix, connection: named('worker-backend') }), logger: silentLogger });
  let done = 0;
  let finish!: () => void;
  const allDone = new Promise<void>((r) => (finish = r));
  server.add('process', 'noop', (p: string) => {
    if (++done === n) setImmediate(finish);
    return p.length;
  });
  try {
    const b0 = await inputBytes(info);
    counting = true;
    for (let k = 0; k < n; k++) await client.send('process', 'noop', PAYLOAD);
    counting = false;
    const b1 = await inputBytes(info);
    print(`send, 1 in flight, ${n} tasks`, n, b1 - b0);
    counting = true;
    await server.run('process', 50);
    await allDone;
    // The last acks and writes leave after their handlers settled.
    await new Promise((r) => setTimeout(r, 300));
    counting = false;
    print(`processing, concurrency 50`, n, (await inputBytes(info)) - b1);
  } finally {
    await server.shutdown(5000);
    await client.close();
    info.disconnect();
    await redis.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
