/**
 * Waiting for replicas (`waitReplicas` option of the Redis broker and backend). Redis replication is
 * asynchronous: a write a master acknowledged can be lost when that master dies before its replicas
 * have it and a replica is promoted. With `waitReplicas`, the writes that matter (the broker's
 * publishes, the backend's state writes) are followed on the same connection by `WAIT replicas
 * timeoutMs` in one pipeline (on a cluster: to the master of the write's slot), and the operation
 * resolves only once that many replicas have acknowledged the write.
 */
import { ConnectionError, InvalidOptionError } from '../src/errors.js';
import { isCluster, type RedisClient } from './redis-cluster.js';

/** How often a pipeline refused with MOVED is sent again after a slot map refresh. */
const MAX_MOVED_RETRIES = 5;

/** The `waitReplicas` option. */
export interface WaitReplicas {
  /** How many replicas must have each write (`WAIT` numreplicas), at least 1. */
  replicas: number;
  /** How long Redis waits for them (ms, at least 1); fewer by then rejects with `ConnectionError`. */
  timeoutMs: number;
}

/** Validates the option (throws `InvalidOptionError`); undefined stays undefined. */
export function checkWaitReplicas(o: WaitReplicas | undefined): WaitReplicas | undefined {
  if (o === undefined) return undefined;
  const ok = (n: unknown): boolean => typeof n === 'number' && Number.isInteger(n) && n >= 1;
  if (typeof o !== 'object' || o === null || !ok(o.replicas) || !ok(o.timeoutMs)) {
    throw new InvalidOptionError('waitReplicas must be { replicas: integer >= 1, timeoutMs: integer >= 1 }');
  }
  return { replicas: o.replicas, timeoutMs: o.timeoutMs };
}

/** A command of a pipeline by name (scripts defined with `defineCommand` are there too). */
type PipelineCommand = (...args: unknown[]) => unknown;

/**
 * Sends command `name` with `args` and, with `wait`, `WAIT` right behind it in one pipeline; resolves
 * with the command's reply once enough replicas have the write. Rejects with the command's error, or
 * with `ConnectionError` when fewer replicas than asked acknowledged within the timeout (the write
 * is on the master and may or may not survive a failover: its outcome is unknown).
 */
export async function callWithWait(client: RedisClient, name: string, args: unknown[], wait: WaitReplicas | undefined): Promise<unknown> {
  if (wait === undefined) return (client as unknown as Record<string, PipelineCommand>)[name]?.(...args);
  let first: [Error | null, unknown] | undefined;
  let second: [Error | null, unknown] | undefined;
  for (let attempt = 0; ; attempt++) {
    const p = client.pipeline();
    (p as unknown as Record<string, PipelineCommand>)[name]?.(...args);
    p.wait(wait.replicas, wait.timeoutMs);
    [first, second] = (await p.exec()) ?? [];
    if (first === undefined || second === undefined) throw new ConnectionError(`redis ${name}: no reply`);
    // A cluster pipeline follows MOVED only when every command got it (WAIT, keyless, does not): the
    // command did not run; refresh the slot map and send the pipeline again.
    const moved = first[0] !== null && /^(MOVED|ASK) /.test(first[0].message);
    if (!moved || !isCluster(client) || attempt >= MAX_MOVED_RETRIES) break;
    await new Promise<void>((resolve) => client.refreshSlotsCache(() => resolve()));
  }
  if (first[0]) throw first[0];
  if (second[0]) throw second[0];
  const acked = Number(second[1]);
  if (acked < wait.replicas) {
    throw new ConnectionError(`redis ${name}: written on the master, but only ${acked} of ${wait.replicas} replica(s) acknowledged within ${wait.timeoutMs} ms (waitReplicas); a failover now could lose it`);
  }
  return first[1];
}
