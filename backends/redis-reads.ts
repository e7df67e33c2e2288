/**
 * Read batching of the Redis result backend: the GETs issued in one event-loop tick are sent
 * together at its end — a few as plain GETs (no auto-pipelining hop and no pipeline object: the
 * latency of `getResult` after a push hint, which reads state and result), more in one pipeline (one
 * write to the socket). Each key reports its own error, as a lone read would. On a Redis Cluster every
 * read is a plain GET (ioredis auto-pipelines them per node).
 */
import type { RedisClient } from '../brokers/redis-cluster.js';
import { corkTick } from '../brokers/redis-cork.js';

/** Up to this many reads of a tick are sent as plain GETs; more travel in one pipeline. */
const SMALL_READS = 4;

/** A GET waiting for the end of the current tick. */
interface PendingRead {
  key: string;
  resolve(value: string | null): void;
  reject(err: unknown): void;
}

/** The GETs of the current tick on one connection. */
export class ReadBatcher {
  private pending: PendingRead[] = [];

  /** @param client the connection the GETs are sent on */
  constructor(private readonly client: RedisClient) {}

  /** GET of one key, sent at the end of the tick with the others (rejects with the driver's error). */
  get(key: string): Promise<string | null> {
    return new Promise<string | null>((resolve, reject) => {
      this.pending.push({ key, resolve, reject });
      if (this.pending.length === 1) process.nextTick(this.flush);
    });
  }

  private readonly flush = (): void => {
    const all = this.pending;
    this.pending = [];
    corkTick(this.client);
    // On a cluster the keys of one pipeline would span nodes: plain GETs (auto-pipelined per node).
    if (all.length <= SMALL_READS || this.client.isCluster) {
      for (const r of all) this.client.get(r.key).then(r.resolve, r.reject);
      return;
    }
    const pipeline = this.client.pipeline();
    for (const r of all) pipeline.get(r.key);
    pipeline.exec().then(
      (replies) => {
        for (let i = 0; i < all.length; i++) {
          const r = all[i] as PendingRead;
          const reply = replies?.[i];
          if (reply === undefined) r.reject(new Error('no reply'));
          else if (reply[0] !== null) r.reject(reply[0]);
          else r.resolve(reply[1] as string | null);
        }
      },
      (err: unknown) => {
        for (const r of all) r.reject(err);
      },
    );
  };
}
