/**
 * The Redis broker of tasuki (`tasuki/brokers/redis`), built on ioredis 5.
 *
 * A group's messages live in a ready LIST of ids, a delayed ZSET (id → due time), a lease ZSET
 * (delivery token → lease deadline) and a body HASH (`./redis-keys.ts`); every multi-key step is one
 * Lua script (`./redis-scripts.ts`), so each operation is atomic and costs one round trip. Expired
 * leases and due delayed messages are moved by the fetch script itself (no reaper process is needed:
 * any fetching worker recovers the deliveries of a worker killed with SIGKILL).
 *
 * Elsewhere: options (`./redis-options.ts`), connections (`./redis-connection.ts`), per-tick
 * publish/ack batches (`./redis-tick-batches.ts`), the fetch loop (`./redis-fetch.ts`), dead letters
 * (`./redis-dead-letters.ts`), idle fetches on one multi-key BLPOP (`./redis-wake-hub.ts`; a capped
 * pool on a cluster, `./redis-blocking.ts`), the shard-count check and old lane data upgrade
 * (`./redis-group-gate.ts`), waits (`./redis-waits.ts`), values (`./redis-values.ts`), the durability
 * check (`./redis-durability.ts`). This file: the broker class, its life cycle and `Broker` operations.
 */
import type { Broker, DeadLetter, DeadLetterReason, Delivery, FetchOptions, DispatchFeature, PublishOptions, QueueCounts, WaitReason } from '../src/broker.js';
import { checkKey } from '../src/limits.js';
import { ClosedError, ConnectionError, InvalidOptionError, TasukiError } from '../src/errors.js';
import { assertName } from '../src/names.js';
import { BlockingPool } from './redis-blocking.js';
import { WakeHub, type WakeWaiter } from './redis-wake-hub.js';
import { RedisConnector, failureText, openConnection } from './redis-connection.js';
import { DeadLetterOps } from './redis-dead-letters.js';
import { GroupFetcher } from './redis-fetch.js';
import { corkTick } from './redis-cork.js';
import { ConnectionShare, type SharedConnection } from './redis-shared-connection.js';
import { emitDurabilityWarning, watchDurability } from './redis-durability.js';
import { GroupGate } from './redis-group-gate.js';
import { KeyCache, allKeys, type GroupKeys } from './redis-keys.js';
import { ScriptKeyCache, type ScriptName } from './redis-script-keys.js';
import { ShardPicker, keyShard, markShard, shardCount, shardOf, shardedFeatures, type ShardsOption } from './redis-shards.js';
import { fetchSharded, splitByShard, tokensByShard } from './redis-sharded.js';
import { callWithWait, checkWaitReplicas, type WaitReplicas } from './redis-replicas.js';
import { brokerSettings, type RedisBrokerOptions } from './redis-options.js';
import { registerScripts, type ScriptedRedis } from './redis-scripts.js';
import { TickBatches } from './redis-tick-batches.js';
import { availableAtArg, deliveryGroup, flowArgs, laneArg, positiveMs, publishArgs, stringArray, sumCounts, type PendingPublish } from './redis-values.js';
import { Waits } from './redis-waits.js';
import { parseWaitReason } from './redis-wait-reason.js';

export type { RedisBrokerLogger } from './redis-connection.js';
export type { RedisBrokerOptions } from './redis-options.js';
export type { SharedConnection } from './redis-shared-connection.js';

/** Most messages of coalesced single publishes sent in one script call. */
const MAX_PUBLISH_PER_CALL = 500;

/**
 * Redis broker: at-least-once delivery with leases, delays and retries held in Redis, blocking fetch,
 * dead letters. Every key of a group shares the hash tag `{group}`, so it works on Redis Cluster
 * slots too (one group per slot). See the module comment for the design.
 */
export class RedisBroker implements Broker {
  /** @inheritdoc */
  readonly kind = 'redis';
  /**
   * Every flow-control feature, evaluated inside the fetch script (global across processes); with
   * `shards` above 1 for any group, the key features only.
   */
  readonly dispatchFeatures: ReadonlySet<DispatchFeature>;
  /** Key prefix of this broker. */
  readonly prefix: string;
  private readonly cmd: ScriptedRedis;
  /** Every pending wait; closing the broker ends them. */
  private readonly waits = new Waits();
  /** Where idle fetches wait: the wake hub (one blocking connection), on a cluster a capped pool. */
  private readonly pool: WakeWaiter;
  /** Bound of one operation (ms), see {@link RedisBrokerOptions.operationTimeoutMs}. */
  private readonly opTimeout: number;
  private closing: Promise<void> | undefined;
  /** Single publishes of the current tick, one script call per group (the script takes any number). */
  private readonly publishes = new TickBatches<PendingPublish>(
    MAX_PUBLISH_PER_CALL,
    (id, items) => this.publishScript(this.keys.forId(id), items),
    (err) => this.failure('publish', err),
  );
  /** Acks of the current tick, one script call per group (each still removes only what its token holds). */
  private readonly acks = new TickBatches<string>(
    Number.MAX_SAFE_INTEGER,
    (id, tokens) => {
      const k = this.keys.forId(id);
      return tokens.length === 1 ? this.script('tasukiAck', k, tokens[0] as string) : this.script('tasukiAckMany', k, ...tokens);
    },
    (err) => this.failure('ack', err),
  );
  /** Key names by group. */
  private readonly keys: KeyCache;
  /** The declared keys of each script by group. */
  private readonly scriptKeys = new ScriptKeyCache();
  /** Listing, redrive and deletion of dead letters (`./redis-dead-letters.ts`). */
  private readonly deadLetters = new DeadLetterOps({
    keys: (group, shard) => this.keys.get(group, shard),
    shards: (group) => shardCount(this.shards, group),
    call: (what, name, k, ...args) => this.run(what, () => this.script(name, k, ...args)),
  });
  /** The users of the command connection (`lendConnection`). */
  private readonly share: ConnectionShare;
  /** The fetch loop of unsharded groups, with its hints. */
  private readonly fetcher: GroupFetcher;
  /** Shards by group. */
  private readonly shards: ShardsOption;
  /** Shard choice of publishes and fetches. */
  private readonly picker = new ShardPicker();
  /** Replicas every publish waits for (`waitReplicas`). */
  private readonly waitReplicas: WaitReplicas | undefined;
  /** The shard-count check and the upgrade of the old lane layout (`./redis-group-gate.ts`). */
  private readonly gate = new GroupGate({
    cmd: () => this.cmd, shardCount: (group) => shardCount(this.shards, group), keys: (group) => this.keys.get(group),
    script: (name, k, ...args) => this.script(name, k, ...args), run: (what, op) => this.run(what, op),
  });


  /** @param options connection, key prefix, connection names, logger */
  constructor(options: RedisBrokerOptions = {}) {
    const settings = brokerSettings(options);
    this.prefix = settings.prefix;
    this.keys = new KeyCache(settings.prefix);
    this.opTimeout = settings.operationTimeoutMs;
    this.shards = settings.shards;
    this.waitReplicas = checkWaitReplicas(options.waitReplicas);
    this.dispatchFeatures = shardedFeatures(this.shards);
    const connector = new RedisConnector(settings.connection, settings.connectionName, options.logger, () => this.closed);
    // No ioredis auto-pipelining by default: the broker already sends the publishes and acks of one
    // tick as one script call, and auto-pipelining's per-batch objects cost more than they save
    // (measured: about 20 % more processing throughput and a lower latency tail without it).
    this.cmd = registerScripts(
      connector.create('cmd', {
        enableAutoPipelining: connector.baseOptions.enableAutoPipelining ?? false,
        // Every command of this connection (scripts, CLIENT UNBLOCK, the handshake) rejects after
        // the bound, also while it waits in the offline queue for a reconnect.
        commandTimeout: this.opTimeout,
      }),
    );
    this.pool =
      connector.cluster === undefined
        ? new WakeHub(connector, this.cmd, this.waits, options.logger, this.opTimeout)
        : new BlockingPool(connector, this.cmd, this.waits, options.logger, this.opTimeout, settings.clusterBlockingConnections);
    this.fetcher = new GroupFetcher(this.cmd, this.waits, this.pool);
    this.share = new ConnectionShare(this.cmd, this.opTimeout, () => openConnection(this.cmd, () => false, this.opTimeout));
    const logger = options.logger;
    watchDurability(this.cmd, { module: 'redis broker', persistence: true }, logger ? (msg, fields) => logger.warn(msg, fields) : emitDurabilityWarning);
  }

  private get closed(): boolean {
    return this.waits.closed;
  }

  /**
   * Opens the command connection (blocking connections open when a fetch first waits); rejects with
   * `ConnectionError` when Redis is not ready within `operationTimeoutMs`. Idempotent.
   */
  async connect(): Promise<void> {
    this.assertOpen();
    await openConnection(this.cmd, () => this.closed, this.opTimeout);
  }

  /** Closes every connection; waiting fetches resolve with `[]`, later calls reject with `ClosedError`. Idempotent. */
  close(): Promise<void> {
    if (!this.closing) {
      this.waits.close();
      this.closing = (async () => {
        this.pool.close();
        // Shut now, or when the last backend it was lent to closes (QUIT first: replies in flight arrive).
        await this.share.drop();
      })();
    }
    return this.closing;
  }

  /**
   * Lends the command connection to a Redis backend (its option `shareConnection: broker` calls
   * this): see `./redis-shared-connection.ts`. Throws `ClosedError` after close, `InvalidOptionError`
   * on a Cluster.
   */
  lendConnection(): SharedConnection {
    this.assertOpen();
    return this.share.lend();
  }

  /** @inheritdoc */
  publish(group: string, body: string, options: PublishOptions = {}): Promise<void> {
    let at: number;
    let lane: string;
    try {
      this.assertOpen();
      assertName('group', group);
      if (typeof body !== 'string') throw new InvalidOptionError('message body must be a string');
      at = availableAtArg(options?.availableAt);
      lane = laneArg(options);
    } catch (err) {
      return Promise.reject(err);
    }
    // The publishes of one tick to one group travel in one atomic script call; each resolves once
    // Redis holds its message.
    const add = (): Promise<void> => this.publishes.add(KeyCache.idOf(group, this.picker.pick(shardCount(this.shards, group), lane)), { at, body, lane });
    const check = this.gate.shards(group);
    return check === undefined ? add() : check.then(add);
  }

  /** Publishes every item in one atomic script call (one round trip). */
  async publishBatch(group: string, items: ReadonlyArray<{ body: string; options?: PublishOptions }>): Promise<void> {
    this.assertOpen();
    assertName('group', group);
    if (!Array.isArray(items)) throw new InvalidOptionError('publishBatch items must be an array');
    if (items.length === 0) return;
    const pending = items.map((item): PendingPublish => {
      if (typeof item?.body !== 'string') throw new InvalidOptionError('message body must be a string');
      return { at: availableAtArg(item.options?.availableAt), body: item.body, lane: laneArg(item.options) };
    });
    await this.gate.shards(group);
    // One atomic call per shard (with shards, the batch as a whole is not atomic across them).
    const byShard = splitByShard(pending, shardCount(this.shards, group), this.picker);
    await Promise.all([...byShard].map(([shard, list]) => this.run('publish', () => this.publishScript(this.keys.get(group, shard), list))));
  }

  /**
   * Takes up to `max` messages in one script call. When none is ready it blocks on the group's wake
   * list (no polling) until a publish wakes it, the next delayed message is due, a lease runs out,
   * `waitMs` passes or `signal` aborts. While Redis is unreachable it waits for the reconnect (up to
   * `waitMs`, at least 1 s) and then rejects with `ConnectionError`; a fetch script call that gets no
   * answer rejects after `operationTimeoutMs`.
   */
  async fetch(group: string, max: number, options: FetchOptions): Promise<Delivery[]> {
    this.assertOpen();
    assertName('group', group);
    if (!Number.isInteger(max) || max < 1) throw new InvalidOptionError(`fetch max must be an integer >= 1, got ${max}`);
    const leaseMs = positiveMs('leaseMs', options?.leaseMs);
    const waitMs = options?.waitMs;
    if (typeof waitMs !== 'number' || !(waitMs >= 0)) throw new InvalidOptionError(`waitMs must be a number >= 0, got ${waitMs}`);
    const { signal } = options;
    const k = this.keys.get(group);
    const deadline = Date.now() + waitMs;
    const limits = flowArgs(options.flow);
    const n = shardCount(this.shards, group);
    if (n > 1) {
      const ctx = { cmd: this.cmd, waits: this.waits, pool: this.pool, picker: this.picker, keys: (shard: number) => this.keys.get(group, shard),
        fetchScript: (sk: GroupKeys, m: number) => this.run('fetch', () => this.gate.fetching(group, sk, () => this.script('tasukiFetch', sk, m, leaseMs, ...limits))) };
      return fetchSharded(ctx, group, n, max, deadline, signal);
    }
    return this.fetcher.fetch({ group, keys: k, waitMs, deadline, signal, script: () => this.run('fetch', () => this.gate.fetching(group, k, () => this.script('tasukiFetch', k, max, leaseMs, ...limits))) });
  }

  /**
   * Acks issued in the same tick for one group travel in one script call (each still removes only a
   * delivery its token holds).
   */
  ack(delivery: Delivery): Promise<void> {
    let group: string;
    try {
      this.assertOpen();
      group = deliveryGroup(delivery);
    } catch (err) {
      return Promise.reject(err);
    }
    const { shard, local } = shardOf(delivery.token);
    return this.acks.add(KeyCache.idOf(group, shard), local);
  }

  /** @inheritdoc */
  async retry(delivery: Delivery, body: string, availableAt: number): Promise<void> {
    this.assertOpen();
    const group = deliveryGroup(delivery);
    const { shard, local } = shardOf(delivery.token);
    const k = this.keys.get(group, shard);
    if (typeof body !== 'string') throw new InvalidOptionError('message body must be a string');
    const at = availableAtArg(availableAt);
    await this.run('retry', () => this.script('tasukiRetry', k, local, body, at));
  }

  /** @inheritdoc */
  async release(delivery: Delivery): Promise<void> {
    this.assertOpen();
    const { shard, local } = shardOf(delivery.token);
    const k = this.keys.get(deliveryGroup(delivery), shard);
    await this.run('release', () => this.script('tasukiRelease', k, local));
  }

  /** Renews leases with one script call per group (all groups in parallel). */
  async extend(deliveries: ReadonlyArray<Delivery>, leaseMs: number): Promise<string[]> {
    this.assertOpen();
    const ms = positiveMs('leaseMs', leaseMs);
    const lost = await Promise.all(
      [...tokensByShard(deliveries)].map(async ([id, tokens]) => {
        const shard = this.keys.forId(id).shard;
        const reply = await this.run('extend', () => this.script('tasukiExtend', this.keys.forId(id), ms, ...tokens));
        return stringArray(reply, 'extend').map((t) => markShard(shard, t));
      }),
    );
    return lost.flat();
  }

  /** @inheritdoc */
  async deadLetter(delivery: Delivery, reason: DeadLetterReason): Promise<void> {
    this.assertOpen();
    const { shard, local } = shardOf(delivery.token);
    const k = this.keys.get(deliveryGroup(delivery), shard);
    const json = JSON.stringify({ code: String(reason?.code ?? ''), message: String(reason?.message ?? '') });
    await this.run('deadLetter', () => this.script('tasukiDeadLetter', k, local, json));
  }

  /** Lists dead letters oldest first; `limit` defaults to 100. */
  async listDeadLetters(group: string, options: { offset?: number; limit?: number } = {}): Promise<DeadLetter[]> {
    this.assertOpen();
    return this.deadLetters.list(group, options);
  }

  /** @inheritdoc */
  async redriveDeadLetters(group: string, ids?: ReadonlyArray<string>): Promise<number> {
    this.assertOpen();
    return this.deadLetters.redrive(group, ids);
  }

  /** @inheritdoc */
  async deleteDeadLetters(group: string, ids?: ReadonlyArray<string>): Promise<number> {
    this.assertOpen();
    return this.deadLetters.delete(group, ids);
  }

  /** Counts after moving expired leases and due delayed messages to ready. */
  async counts(group: string): Promise<QueueCounts> {
    this.assertOpen();
    assertName('group', group);
    const replies = await Promise.all(
      Array.from({ length: shardCount(this.shards, group) }, (_, shard) => {
        const k = this.keys.get(group, shard);
        return this.run('counts', () => this.gate.upgraded(k, () => this.script('tasukiCounts', k)));
      }),
    );
    return sumCounts(replies);
  }

  /** Deletes every key of the group (one DEL per shard: its keys share one hash slot), after moving any lanes of the old layout into them. */
  async purge(group: string): Promise<void> {
    this.assertOpen();
    assertName('group', group);
    for (let shard = 0; shard < shardCount(this.shards, group); shard++) {
      const k = this.keys.get(group, shard);
      await this.gate.upgrade(k, true);
      await this.run('purge', () => this.cmd.del(...allKeys(k)));
    }
    this.fetcher.forget(group);
    this.gate.forget(group);
  }

  /** Gives no message of `key` in `group` for `ms` (every worker process: the back-off is stored in Redis). */
  async backoffKey(group: string, key: string, ms: number): Promise<void> {
    this.assertOpen();
    assertName('group', group);
    checkKey(key);
    const wait = positiveMs('backoff ms', ms);
    const k = this.keys.get(group, keyShard(shardCount(this.shards, group), key));
    await this.run('backoffKey', () => this.script('tasukiBackoffKey', k, key, wait));
  }

  /** Why ready tasks of `key` in `group` are held back by flow control now (`null`: nothing holds them); see `./redis-wait-reason.ts`. */
  async waitReason(group: string, key: string | undefined): Promise<WaitReason | null> {
    this.assertOpen();
    assertName('group', group);
    // A keyed message lives on its key's shard (`./redis-shards.ts`).
    const shard = key === undefined ? 0 : keyShard(shardCount(this.shards, group), key);
    return parseWaitReason(await this.run('waitReason', () => this.script('tasukiWaitReason', this.keys.get(group, shard), key ?? '')), key);
  }

  // ---- internals ---------------------------------------------------------------------------------

  /** One atomic publish script call: the plain one, or the flow one when a message has a priority or key. */
  private publishScript(k: GroupKeys, items: ReadonlyArray<PendingPublish>): Promise<unknown> {
    const { name, args } = publishArgs(items);
    if (this.waitReplicas === undefined) return this.script(name, k, ...args);
    return callWithWait(this.cmd, name, [...this.scriptKeys.of(k, name), ...args], this.waitReplicas);
  }

  /** Calls script `name` with the keys it declares for the group (shard) of `k`, then `args`. */
  private script(name: ScriptName, k: GroupKeys, ...args: Array<string | number>): Promise<unknown> {
    corkTick(this.cmd);
    return this.cmd[name](...this.scriptKeys.of(k, name), ...args);
  }

  private assertOpen(): void {
    if (this.closed) throw new ClosedError('redis broker');
  }

  /** Runs one Redis operation, turning driver failures into `ConnectionError` (or `ClosedError`). */
  private async run<T>(what: string, op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (err) {
      throw this.failure(what, err);
    }
  }

  /** The typed error for a failed Redis operation. */
  private failure(what: string, err: unknown): TasukiError {
    if (err instanceof TasukiError) return err;
    if (this.closed) return new ClosedError('redis broker');
    return new ConnectionError(`redis ${what} failed: ${failureText(err, this.opTimeout)}`, err);
  }
}
