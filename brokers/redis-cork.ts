/**
 * One socket write per tick and connection: the first command a tick sends on a connection corks
 * its socket, and the socket is uncorked once the tick's queued callbacks have run, so every
 * command of that tick (the broker's publish and acks, the backend's writes and reads, on a
 * connection they share) leaves in one write. Used by the Redis broker and backend on one node
 * (a Cluster client has a socket per node: untouched).
 */
import type { Redis } from 'ioredis';
import type { RedisClient } from './redis-cluster.js';

/** Connections corked in the current tick. */
const corked = new WeakSet<object>();

/** Corks the socket of `client` until the end of the current tick (no-op when not ready or on a cluster). */
export function corkTick(client: RedisClient): void {
  if (client.isCluster || client.status !== 'ready' || corked.has(client)) return;
  const stream = (client as Redis).stream as Redis['stream'] | undefined;
  if (stream === undefined || typeof stream.cork !== 'function') return;
  corked.add(client);
  stream.cork();
  // Queued after the nextTick flushes already scheduled in this tick: they write into the cork first.
  process.nextTick(() => {
    corked.delete(client);
    stream.uncork();
  });
}
