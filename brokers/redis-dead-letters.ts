/**
 * The dead-letter operations of the Redis broker (`RedisBroker.listDeadLetters`,
 * `redriveDeadLetters`, `deleteDeadLetters`): argument checks, then one script call per shard of
 * the group (`./redis-sharded.ts` merges the shards' pages and sums their counts).
 */
import type { DeadLetter } from '../src/broker.js';
import { InvalidOptionError } from '../src/errors.js';
import { assertName } from '../src/names.js';
import type { GroupKeys } from './redis-keys.js';
import type { ScriptName } from './redis-script-keys.js';
import { listDeadSharded, onShards } from './redis-sharded.js';
import { idList, stringArray } from './redis-values.js';

/** Default page size of {@link DeadLetterOps.list}. */
const DEFAULT_DEAD_LETTER_LIMIT = 100;

/** What the dead-letter operations need from their broker. */
export interface DeadLetterContext {
  /** The keys of a group's shard. */
  keys(group: string, shard: number): GroupKeys;
  /** How many shards a group has. */
  shards(group: string): number;
  /** One script call on the keys of `k`, driver failures turned into typed errors (`what` names it). */
  call(what: string, name: ScriptName, k: GroupKeys, ...args: Array<string | number>): Promise<unknown>;
}

/** The dead-letter operations of one broker. */
export class DeadLetterOps {
  /** @param ctx the broker's keys, shards and script calls */
  constructor(private readonly ctx: DeadLetterContext) {}

  /** Lists dead letters oldest first; `limit` defaults to 100. */
  async list(group: string, options: { offset?: number; limit?: number } = {}): Promise<DeadLetter[]> {
    assertName('group', group);
    const offset = options.offset ?? 0;
    const limit = options.limit ?? DEFAULT_DEAD_LETTER_LIMIT;
    if (!Number.isInteger(offset) || offset < 0) throw new InvalidOptionError(`offset must be an integer >= 0, got ${offset}`);
    if (!Number.isInteger(limit) || limit < 0) throw new InvalidOptionError(`limit must be an integer >= 0, got ${limit}`);
    if (limit === 0) return [];
    return listDeadSharded(group, this.ctx.shards(group), offset, limit, async (shard, from, count) =>
      stringArray(await this.ctx.call('listDeadLetters', 'tasukiListDead', this.ctx.keys(group, shard), from, count), 'listDeadLetters'),
    );
  }

  /** Moves dead letters (all, or those of `ids`) back to ready; resolves with how many moved. */
  redrive(group: string, ids?: ReadonlyArray<string>): Promise<number> {
    return this.onIds(group, ids, 'redriveDeadLetters', 'tasukiRedriveDead');
  }

  /** Deletes dead letters (all, or those of `ids`); resolves with how many went. */
  delete(group: string, ids?: ReadonlyArray<string>): Promise<number> {
    return this.onIds(group, ids, 'deleteDeadLetters', 'tasukiDeleteDead');
  }

  private async onIds(group: string, ids: ReadonlyArray<string> | undefined, what: string, name: ScriptName): Promise<number> {
    assertName('group', group);
    const list = idList(ids);
    if (list && list.length === 0) return 0;
    const keys = (shard: number): GroupKeys => this.ctx.keys(group, shard);
    return onShards(this.ctx.shards(group), keys, list, (k, some) => this.ctx.call(what, name, k, ...some));
  }
}
