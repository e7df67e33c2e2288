/**
 * The task index of the Redis backend on a Redis Cluster. A task's keys and its group's index sets
 * live in different slots, so the index cannot move inside the write script as on one node
 * (`./redis-scripts.ts`): right after a tick's write calls, the written entries of each group are
 * moved by one call of {@link CLUSTER_INDEX_SCRIPT} on that group's sets (`P:ix|{G}|STATUS`, one hash
 * tag per group), and a group's first entry adds it to `P:ix-groups`. A process that dies between
 * the two calls leaves that task out of the index until its next write (reads already skip entries
 * whose state moved on or is gone).
 */
import type { RedisClient } from '../brokers/redis-cluster.js';
import { TASK_STATUSES } from '../src/state.js';
import { indexKeys } from './redis-index-plan.js';

/** Name under which {@link CLUSTER_INDEX_SCRIPT} is registered. */
export const CLUSTER_INDEX_COMMAND = 'tasukiBackendIndex';

/**
 * Moves index entries of one group. KEYS: the group's status sets in `TASK_STATUSES` order
 * (`indexKeys`). ARGV: the cap, then per entry: previous status ('' none), new status, score, id,
 * '1' when the state was not stored (the entry is removed). Returns the number of entries moved.
 * A set is trimmed in steps, as on one node (`./redis-scripts.ts`): past cap + cap // 100 entries it
 * goes back to its cap, oldest first; its size is read once per call and counted after that.
 */
export const CLUSTER_INDEX_SCRIPT = `
local cap = tonumber(ARGV[1])
local pos = {}
local names = { ${TASK_STATUSES.map((s) => `'${s}'`).join(', ')} }
for i = 1, #names do pos[names[i]] = KEYS[i] end
local limit = cap + math.floor(cap / 100)
local card = {}
local n = 0
for a = 2, #ARGV, 5 do
  local prev, status, score, id, gone = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  if prev ~= '' and prev ~= status and pos[prev] then
    if redis.call('ZREM', pos[prev], id) == 1 and card[prev] then card[prev] = card[prev] - 1 end
  end
  local set = pos[status]
  if set then
    if gone == '1' then
      if redis.call('ZREM', set, id) == 1 and card[status] then card[status] = card[status] - 1 end
    elseif redis.call('ZADD', set, score, id) == 1 then
      local c = card[status]
      if c then c = c + 1 else c = redis.call('ZCARD', set) end
      if c > limit then
        redis.call('ZREMRANGEBYRANK', set, 0, -cap - 1)
        c = cap
      end
      card[status] = c
    end
    n = n + 1
  end
end
return n
`;

/** One written entry waiting for its index move. */
export interface IndexMove {
  /** The group's index key base (`P:ix|{G}`). */
  readonly base: string;
  readonly group: string;
  /** The stored status before the write ('' none). */
  readonly prev: string;
  readonly status: string;
  readonly score: number;
  readonly id: string;
  /** The state was not stored (expiry 0): the entry goes. */
  readonly gone: boolean;
}

/** The status in a stored state text ('' when there is none or it does not parse). */
export function statusOf(text: string | null | undefined): string {
  if (text === null || text === undefined) return '';
  try {
    const v = JSON.parse(text) as { status?: unknown };
    return typeof v.status === 'string' ? v.status : '';
  } catch {
    return '';
  }
}

/**
 * Moves `moves` in one script call per group, then adds new groups to `groupsKey`; resolves when done
 * (failures are swallowed: the index is a view that reads repair, the writes themselves succeeded).
 */
export async function applyIndexMoves(client: RedisClient, moves: IndexMove[], cap: number, groupsKey: string): Promise<void> {
  const byBase = new Map<string, IndexMove[]>();
  for (const m of moves) {
    const list = byBase.get(m.base);
    if (list === undefined) byBase.set(m.base, [m]);
    else list.push(m);
  }
  const run = (client as unknown as Record<string, (...a: Array<string | number>) => Promise<unknown>>)[CLUSTER_INDEX_COMMAND] as (...a: Array<string | number>) => Promise<unknown>;
  await Promise.all(
    [...byBase].map(async ([base, list]) => {
      const args: Array<string | number> = [...indexKeys(base), cap];
      for (const m of list) args.push(m.prev, m.status, m.score, m.id, m.gone ? '1' : '0');
      try {
        await run.call(client, ...args);
        const fresh = list.find((m) => m.prev === '');
        if (fresh !== undefined) await client.sadd(groupsKey, fresh.group);
      } catch {
        // the index misses these entries until their next write
      }
    }),
  );
}
