/**
 * What the Redis broker checks before it works on a group: that its `shards` count is the group's
 * (`./redis-shards-check.ts`, once per group) and, before fetching from or counting a group shard,
 * that no data of the flow-control layout before `lanelist` is left in it (`./redis-legacy-lanes.ts`,
 * on first use and every few seconds). Both return `undefined` when there is nothing to wait for, so
 * the usual path allocates nothing.
 */
import type { GroupKeys } from './redis-keys.js';
import { LegacyLanes } from './redis-legacy-lanes.js';
import { fixedKeys, type ScriptName } from './redis-script-keys.js';
import type { ScriptedRedis } from './redis-scripts.js';
import { ShardsCheck } from './redis-shards-check.js';

/** What the gate needs of its broker. */
export interface GroupGateContext {
  /** The broker's command connection (read when used: the broker builds it after the gate). */
  cmd(): ScriptedRedis;
  /** The configured shard count of `group`. */
  shardCount(group: string): number;
  /** The keys of shard 0 of `group`. */
  keys(group: string): GroupKeys;
  /** Calls script `name` with the keys it declares for `k`, then `args`. */
  script(name: ScriptName, k: GroupKeys, ...args: Array<string | number>): Promise<unknown>;
  /** Runs one Redis operation, turning driver failures into typed errors. */
  run<T>(what: string, op: () => Promise<T>): Promise<T>;
}

/** The checks of a broker before it works on a group (see the module comment). */
export class GroupGate {
  private readonly shardsCheck: ShardsCheck;
  private readonly legacy: LegacyLanes;

  /** @param ctx commands of the broker */
  constructor(ctx: GroupGateContext) {
    this.shardsCheck = new ShardsCheck(
      (group, count) => ctx.run('shards check', () => ctx.script('tasukiShards', ctx.keys(group), count)),
      (group) => ctx.shardCount(group),
    );
    this.legacy = new LegacyLanes({
      members: (key) => ctx.run('upgrade check', () => ctx.cmd().smembers(key)),
      migrate: (keys, args) => ctx.run('upgrade', () => ctx.cmd().tasukiMigrateLanes(keys.length, ...keys, ...args)),
      fixed: fixedKeys,
      unparkIdle: (k) => ctx.run('upgrade', () => ctx.script('tasukiUnparkIdle', k)),
    });
  }

  /** The shard-count check of `group` when it is still to be done (rejects with `ShardsMismatchError`). */
  shards(group: string): Promise<void> | undefined {
    return this.shardsCheck.check(group);
  }

  /** The upgrade check of the group shard `k` when one is due (force: now, e.g. before a purge). */
  upgrade(k: GroupKeys, force = false): Promise<void> | undefined {
    return this.legacy.due(k, force);
  }

  /**
   * Runs `op` (a fetch script call on the group shard `k`) after the shard-count check of `group`
   * and the upgrade check of `k` when they are due. Called where the fetch loop calls its script, so
   * that a fetch while Redis is unreachable still waits for the reconnect first.
   */
  fetching<T>(group: string, k: GroupKeys, op: () => Promise<T>): Promise<T> {
    const check = this.shardsCheck.check(group);
    return check === undefined ? this.upgraded(k, op) : check.then(() => this.upgraded(k, op));
  }

  /** Runs `op` after the upgrade check of `k` when one is due. */
  upgraded<T>(k: GroupKeys, op: () => Promise<T>): Promise<T> {
    const due = this.legacy.due(k);
    return due === undefined ? op() : due.then(op);
  }

  /** Forgets what was checked of `group` (a purge deleted its keys). */
  forget(group: string): void {
    this.shardsCheck.forget(group);
  }
}
