/**
 * Options of the Redis broker and their validation (`brokers/redis.ts`).
 */
import type { Cluster, RedisOptions } from 'ioredis';
import { InvalidOptionError } from '../src/errors.js';
import { type ClusterSource, type RedisClusterConnection } from './redis-cluster.js';
import { DEFAULT_CLUSTER_BLOCKING_CONNECTIONS } from './redis-blocking.js';
import { checkShards, type ShardsOption } from './redis-shards.js';
import type { WaitReplicas } from './redis-replicas.js';
import { resolveOperationTimeout, type RedisBrokerLogger } from './redis-connection.js';

/** Options of {@link RedisBroker}. */
export interface RedisBrokerOptions {
  /**
   * Where Redis is: a `redis://` / `rediss://` URL or ioredis options. Default `redis://127.0.0.1:6379`.
   * A `retryStrategy` given here replaces the default reconnect backoff (50 ms doubling to 2 s).
   * `lazyConnect` and `connectionName` are set by the broker. An ioredis `Cluster` runs the broker on
   * that Redis Cluster (the broker makes its own duplicates; the given client stays yours to close).
   */
  connection?: string | RedisOptions | Cluster;
  /**
   * Runs the broker on a Redis Cluster: startup nodes and ioredis Cluster options (instead of
   * `connection`). Every key of a group shares the hash tag `{<group>}`, so each script call touches
   * one slot.
   */
  cluster?: RedisClusterConnection;
  /** First part of every key (`<prefix>:{<group>}:...`). Default `tasuki`. Must not contain `{` or `}`. */
  prefix?: string;
  /**
   * Client name of the broker's connections as shown by `CLIENT LIST`: `<name>:cmd` for the command
   * connection, `<name>:block` for blocking ones. Default `tasuki`.
   */
  connectionName?: string;
  /**
   * Receives connection warnings and the durability warning (unsafe `appendonly` or
   * `maxmemory-policy`, checked at the first connection). Default: connection warnings are not
   * logged; the durability warning becomes a Node process warning (`TASUKI_REDIS_DURABILITY`).
   */
  logger?: RedisBrokerLogger;
  /**
   * How long one operation (publish, ack, fetch script, …, and `connect`) waits for Redis — for its
   * answer, and for a reconnect while Redis is unreachable — before it rejects with
   * `ConnectionError` (`ERR_CONNECTION`); reconnecting goes on with backoff. Such an operation's
   * outcome is unknown (it may still take effect). Idle fetches block for `waitMs`, not bounded by
   * this. Default: the `commandTimeout` of `connection` when it has one, else 15000. Integer ms.
   */
  operationTimeoutMs?: number;
  /**
   * Spreads a group's keys over n hash tags (`{group}`, `{group|1}` … `{group|n-1}`), so that on a
   * Redis Cluster one group's work is served by up to n masters: one number for every group, or
   * counts by group name (others 1). Default 1: today's key layout. Every process (senders and
   * workers) must use the same count for a group: a worker with fewer shards never fetches from the
   * others. Ordering and fairness with shards: see the README ("Scaling past one node").
   */
  shards?: ShardsOption;
  /**
   * Makes every publish wait until this many replicas have it (`WAIT`, sent right behind the publish
   * on the same connection): a publish that resolved then survives the failover of its master. Fewer
   * replicas within `timeoutMs` reject the publish with `ConnectionError` (outcome unknown). Default:
   * no wait (Redis replication is asynchronous; see the README on failover).
   */
  waitReplicas?: WaitReplicas;
  /**
   * On a Redis Cluster, the most blocking connections (Cluster clients) idle fetches wait on at the
   * same moment; a fetch finding them all busy re-runs its fetch script after a pause of at most
   * 250 ms instead. Default 8. (On a single node every idle fetch waits on one shared connection.)
   */
  clusterBlockingConnections?: number;
}

/** The validated settings of a broker. */
export interface BrokerSettings {
  /** Key prefix. */
  readonly prefix: string;
  /** Client name prefix of the connections. */
  readonly connectionName: string;
  /** URL, ioredis options, or the cluster. */
  readonly connection: string | RedisOptions | ClusterSource;
  /** Bound of one operation (ms). */
  readonly operationTimeoutMs: number;
  /** Shards by group. */
  readonly shards: ShardsOption;
  /** Most blocking connections on a cluster. */
  readonly clusterBlockingConnections: number;
}

/** Validates `options` (throws `InvalidOptionError`) and fills in the defaults. */
export function brokerSettings(options: RedisBrokerOptions): BrokerSettings {
  const prefix = options.prefix ?? 'tasuki';
  if (typeof prefix !== 'string' || prefix.length === 0 || /[{}]/.test(prefix)) {
    throw new InvalidOptionError(`prefix must be a non-empty string without "{" or "}", got ${JSON.stringify(prefix)}`);
  }
  const connectionName = options.connectionName ?? 'tasuki';
  if (typeof connectionName !== 'string' || !/^[!-~]+$/.test(connectionName)) {
    throw new InvalidOptionError(`connectionName must be printable ASCII without spaces, got ${JSON.stringify(connectionName)}`);
  }
  const cluster = options.cluster;
  if (cluster !== undefined) {
    if (options.connection !== undefined) throw new InvalidOptionError('give either connection or cluster, not both');
    if (typeof cluster !== 'object' || cluster === null || !Array.isArray(cluster.nodes) || cluster.nodes.length === 0) {
      throw new InvalidOptionError('cluster.nodes must be a non-empty array of startup nodes');
    }
  }
  const connection: string | RedisOptions | ClusterSource = cluster ?? options.connection ?? 'redis://127.0.0.1:6379';
  return {
    prefix,
    connectionName,
    connection,
    operationTimeoutMs: resolveOperationTimeout(options.operationTimeoutMs, connection),
    shards: checkShards(options.shards),
    clusterBlockingConnections: checkBlockingCap(options.clusterBlockingConnections),
  };
}

/** `clusterBlockingConnections`: an integer from 1 to 1000, default 8. */
function checkBlockingCap(value: unknown): number {
  if (value === undefined) return DEFAULT_CLUSTER_BLOCKING_CONNECTIONS;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 1000) {
    throw new InvalidOptionError(`clusterBlockingConnections must be an integer from 1 to 1000, got ${String(value)}`);
  }
  return value;
}
