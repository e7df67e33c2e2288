/**
 * What the Redis broker checks before it works on a group: that its `shards` count is the group's
 * (`./redis-shards-check.ts`, once per group) and, before fetching from or counting a group shard,
 * that no data of the flow-control layout before `lanelist` is left in it (`./redis-legacy-lanes.ts`,
 * on first use and every few seconds). Both return `undefined` when there is nothing to wait for, so
 * the usual path allocates nothing.
 */
import type { GroupKeys } from './redis-keys.js';
import { LegacyLanes, type LegacyLanesContext } from './redis-legacy-lanes.js';
import { ShardsCheck } from './redis-shards-check.js';

/** What the gate needs of its broker. */
export interface GroupGateContext extends LegacyLanesContext {
  /** Runs the `shards` script of `group` (its shard 0) with `count`; resolves with the recorded count. */
  recordShards(group: string, count: number): Promise<unknown>;
  /** The configured shard count of `group`. */
  shardCount(group: string): number;
}

/** The checks of a broker before it works on a group (see the module comment). */
export class GroupGate {
  private readonly shardsCheck: ShardsCheck;
  private readonly legacy: LegacyLanes;

  /** @param ctx commands of the broker */
  constructor(ctx: GroupGateContext) {
    this.shardsCheck = new ShardsCheck(
      (group, count) => ctx.recordShards(group, count),
      (group) => ctx.shardCount(group),
    );
    this.legacy = new LegacyLanes(ctx);
  }

  /** The shard-count check of `group` when it is still to be done (rejects with `ShardsMismatchError`). */
  shards(group: string): Promise<void> | undefined {
    return this.shardsCheck.check(group);
  }

  /** The upgrade check of the group shard `k` when one is due (force: now, e.g. before a purge). */
  upgrade(k: GroupKeys, force = false): Promise<void> | undefined {
    return this.legacy.due(k, force);
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
