/**
 * The durability check of the Redis modules. A redis-server restart keeps what tasuki stored only
 * with append-only persistence (`appendonly yes`; RDB snapshots lose the writes since the last one),
 * and any `maxmemory-policy` other than `noeviction` lets Redis delete keys under memory pressure —
 * tasks, delays, leases and states vanish without an error. At its first connection each module
 * reads both settings (`CONFIG GET`) and warns once when they are unsafe for it; when `CONFIG` is
 * disabled, renamed or denied it says once that they could not be checked. On a Redis Cluster every
 * node is read, masters and replicas (a replica becomes the master of its slots at a failover), and
 * a finding names the node. Each finding is reported once per process and server (node), whichever
 * module instance finds it first.
 */
import { Redis } from 'ioredis';
import { isCluster, type RedisClient } from './redis-cluster.js';
import { redactCredentials } from '../src/errors.js';

/** Where a durability warning goes. */
export type DurabilityWarn = (message: string, fields: Record<string, unknown>) => void;

/** What a module needs of the server. */
export interface DurabilityNeeds {
  /** Name used in the warning (`redis broker`, `redis backend`). */
  readonly module: string;
  /** Whether the module's data must survive a server restart (the broker's tasks must). */
  readonly persistence: boolean;
}

/** Findings already reported in this process, by server and setting. */
const reported = new Set<string>();

/** `host:port` (or the socket path) of the node `redis` talks to. */
function serverOf(redis: Redis): string {
  const o = redis.options;
  return o.path ? o.path : `${o.host ?? '127.0.0.1'}:${o.port ?? 6379}`;
}

/** A reply of `CONFIG GET name`: its value, or undefined when the server did not name it. */
function configValue(reply: unknown, name: string): string | undefined {
  if (!Array.isArray(reply)) return undefined;
  for (let i = 0; i + 1 < reply.length; i += 2) if (String(reply[i]).toLowerCase() === name) return String(reply[i + 1]);
  return undefined;
}

/** Reports `message` unless every one of `keys` was reported before in this process. */
function reportOnce(keys: string[], warn: DurabilityWarn, message: string, fields: Record<string, unknown>): void {
  if (keys.every((k) => reported.has(k))) return;
  for (const k of keys) reported.add(k);
  warn(message, fields);
}

/**
 * Reads the settings and reports what is unsafe: of the one server, or of every node of a cluster
 * (`host:port (cluster node)` in the findings). Resolves true when done (checked, or found
 * uncheckable), false when the connection failed meanwhile (the caller tries again at its next
 * connection).
 */
async function check(redis: RedisClient, needs: DurabilityNeeds, warn: DurabilityWarn): Promise<boolean> {
  if (!isCluster(redis)) return checkNode(redis, serverOf(redis), needs, warn);
  let nodes: Array<{ host: string; port: number }>;
  try {
    nodes = clusterNodes(await redis.cluster('NODES'));
  } catch {
    return false;
  }
  if (nodes.length === 0) return false;
  const done = await Promise.all(
    nodes.map(async ({ host, port }) => {
      // Replicas have no connection of the client (it reads from masters): a short-lived one of their own.
      const known = redis.nodes('all').find((n) => n.options.port === port && n.options.host === host);
      const node = known ?? new Redis({ ...redis.options.redisOptions, host, port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      if (known === undefined) node.on('error', () => undefined);
      try {
        return await checkNode(node, `${host}:${port} (cluster node)`, needs, warn);
      } finally {
        if (known === undefined) node.disconnect();
      }
    }),
  );
  return done.every(Boolean);
}

/** Every live node (`host`, `port`) of a `CLUSTER NODES` reply, masters and replicas. */
function clusterNodes(reply: unknown): Array<{ host: string; port: number }> {
  const out: Array<{ host: string; port: number }> = [];
  for (const line of String(reply).split('\n')) {
    // <id> <ip:port@cport[,hostname]> <flags> <master> ...
    const [, address, flags] = line.split(' ');
    if (address === undefined || flags === undefined || /fail|noaddr|handshake/.test(flags)) continue;
    const hostPort = address.split('@')[0] ?? '';
    const colon = hostPort.lastIndexOf(':');
    const host = hostPort.slice(0, colon);
    const port = Number(hostPort.slice(colon + 1));
    if (host !== '' && Number.isInteger(port) && port > 0) out.push({ host, port });
  }
  return out;
}

/** {@link check} of one node, named `server` in the findings. */
async function checkNode(redis: Redis, server: string, needs: DurabilityNeeds, warn: DurabilityWarn): Promise<boolean> {
  let replies: unknown[];
  try {
    // Both at once: they reach the server ahead of whatever the module sends after connecting.
    replies = await Promise.all([redis.config('GET', 'appendonly'), redis.config('GET', 'maxmemory-policy')]);
  } catch (err) {
    if (!(err instanceof Error) || err.name !== 'ReplyError') return false;
    reportOnce([`${server}|unchecked`], warn, `${needs.module}: could not check the persistence and eviction settings of redis at ${server} (CONFIG GET failed: ${redactCredentials(err.message)}); tasks survive a restart only with appendonly yes, and only maxmemory-policy noeviction never drops them`, { server });
    return true;
  }
  const appendonly = configValue(replies[0], 'appendonly');
  const policy = configValue(replies[1], 'maxmemory-policy');
  const problems: string[] = [];
  const keys: string[] = [];
  const fields: Record<string, unknown> = { server };
  if (needs.persistence && appendonly !== undefined && appendonly !== 'yes') {
    problems.push(`appendonly is "${appendonly}", so a redis-server restart loses tasks (set appendonly yes)`);
    keys.push(`${server}|appendonly`);
    fields['appendonly'] = appendonly;
  }
  if (policy !== undefined && policy !== 'noeviction') {
    problems.push(`maxmemory-policy is "${policy}", so Redis may evict tasuki's keys under memory pressure and silently drop tasks or states (set maxmemory-policy noeviction)`);
    keys.push(`${server}|maxmemory-policy`);
    fields['maxmemoryPolicy'] = policy;
  }
  if (problems.length > 0) {
    reportOnce(keys, warn, `${needs.module}: redis at ${server} is not safe for tasks: ${problems.join('; ')}`, fields);
  } else if ((needs.persistence && appendonly === undefined) || policy === undefined) {
    reportOnce([`${server}|unchecked`], warn, `${needs.module}: could not check the persistence and eviction settings of redis at ${server} (CONFIG GET answered without them); tasks survive a restart only with appendonly yes, and only maxmemory-policy noeviction never drops them`, { server });
  }
  return true;
}

/**
 * Checks the server's durability settings when `redis` is first ready (again at later connections
 * until a check could complete) and reports unsafe ones through `warn`.
 */
export function watchDurability(redis: RedisClient, needs: DurabilityNeeds, warn: DurabilityWarn): void {
  let running = false;
  const onReady = (): void => {
    if (running) return;
    running = true;
    check(redis, needs, warn).then(
      (done) => {
        running = false;
        if (done) redis.off('ready', onReady);
      },
      () => {
        running = false;
      },
    );
  };
  redis.on('ready', onReady);
}

/** The default sink of durability warnings when a module has no logger: one Node process warning. */
export const emitDurabilityWarning: DurabilityWarn = (message) => {
  process.emitWarning(message, { code: 'TASUKI_REDIS_DURABILITY' });
};
