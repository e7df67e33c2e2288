/**
 * Redis Cluster support shared by the Redis broker and the Redis backend: the `cluster` option, the
 * client type both modules use (`Redis | Cluster`), how a Cluster client is made from startup nodes
 * or from a given ioredis `Cluster` (duplicated: the given one stays the caller's), and the hash slot
 * of a key (CRC16/XMODEM of the key or of its hash tag, modulo 16384, as Redis computes it).
 */
import { Cluster, type ClusterNode, type ClusterOptions, type Redis, type RedisOptions } from 'ioredis';

/** The connection of a Redis module: one node, or a Redis Cluster. */
export type RedisClient = Redis | Cluster;

/** Where a Redis Cluster is, for the `cluster` option of the Redis broker and backend. */
export interface RedisClusterConnection {
  /** Startup nodes (any subset of the cluster; ioredis discovers the rest). */
  nodes: ReadonlyArray<ClusterNode>;
  /**
   * ioredis Cluster options; `redisOptions` apply to every node connection. `lazyConnect` and the
   * connection names are set by tasuki.
   */
  options?: ClusterOptions;
}

/** What a module was given to reach a cluster: startup nodes and options, or a Cluster to duplicate. */
export type ClusterSource = RedisClusterConnection | Cluster;

/** Whether `c` is an ioredis Cluster client. */
export function isCluster(c: unknown): c is Cluster {
  return c instanceof Cluster || (typeof c === 'object' && c !== null && (c as { isCluster?: unknown }).isCluster === true);
}

/**
 * A new lazily connecting Cluster client for `source`, whose node connections get `redisOptions`
 * on top of the source's own; `cluster` options override the source's.
 */
export function createCluster(source: ClusterSource, redisOptions: RedisOptions, cluster: ClusterOptions): Cluster {
  const base: ClusterOptions = isCluster(source) ? source.options : source.options ?? {};
  const options: ClusterOptions = {
    ...base,
    ...cluster,
    lazyConnect: true,
    redisOptions: { ...(base.redisOptions ?? {}), ...stripNodeOnly(redisOptions) },
  };
  const c = isCluster(source) ? source.duplicate([], options) : new Cluster([...source.nodes], options);
  c.setMaxListeners(0);
  return c;
}

/** `redisOptions` of a cluster may not set where a node is, nor its own reconnects. */
function stripNodeOnly(o: RedisOptions): NonNullable<ClusterOptions['redisOptions']> {
  const { port: _p, host: _h, path: _pa, sentinels: _s, retryStrategy: _r, enableOfflineQueue: _e, readOnly: _ro, lazyConnect: _l, ...rest } = o;
  return rest;
}

/** CRC16 (XMODEM polynomial 0x1021, initial 0) of the UTF-8 bytes of `s`, as Redis Cluster uses. */
function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const b of bytes) {
    crc ^= b << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

/** The Redis Cluster hash slot (0–16383) of `key`: of its hash tag `{…}` when it has a non-empty one. */
export function keySlot(key: string): number {
  const open = key.indexOf('{');
  let part = key;
  if (open >= 0) {
    const close = key.indexOf('}', open + 1);
    if (close > open + 1) part = key.slice(open + 1, close);
  }
  return crc16(Buffer.from(part, 'utf8')) % 16384;
}
