/**
 * The check that every process uses the same `shards` count for a group (`./redis-shards.ts`):
 * the first broker to publish to or fetch from a group records its count in the fixed key `shards`
 * of shard 0 (`./redis-keys.ts`); a broker configured with another count for that group gets
 * {@link ShardsMismatchError} on publish and fetch (its messages would go to, or be looked for in,
 * shards the others do not use). One script call per group and broker, then cached.
 */
import { ShardsMismatchError } from '../src/errors.js';

/** shards — KEYS: shards. ARGV: count. Records the count if none is; returns the recorded one. */
export const SHARDS = `
local v = redis.call('GET', K.shards)
if v then return v end
redis.call('SET', K.shards, ARGV[1])
return ARGV[1]
`;

/** Most groups whose check a {@link ShardsCheck} remembers. */
const MAX_GROUPS = 1000;

/** Checks a group's shard count once per broker (see the module comment). */
export class ShardsCheck {
  /** Checks in flight, by group (concurrent first uses share one). */
  private readonly done = new Map<string, Promise<void>>();
  /** Groups whose count matched. */
  private readonly ok = new Set<string>();

  /**
   * @param record runs {@link SHARDS} for `group` with `count`; resolves with the recorded count
   * @param count the configured shard count of a group
   */
  constructor(
    private readonly record: (group: string, count: number) => Promise<unknown>,
    private readonly count: (group: string) => number,
  ) {}

  /** Undefined when `group` was checked already (nothing to wait for), else the check. */
  check(group: string): Promise<void> | undefined {
    if (this.ok.has(group)) return undefined;
    let p = this.done.get(group);
    if (p === undefined) {
      const want = this.count(group);
      p = this.record(group, want).then(
        (reply) => {
          const have = Number(reply);
          this.done.delete(group);
          if (have !== want) throw new ShardsMismatchError(group, have, want);
          if (this.ok.size >= MAX_GROUPS) this.ok.clear();
          this.ok.add(group);
        },
        (err: unknown) => {
          this.done.delete(group);
          throw err;
        },
      );
      this.done.set(group, p);
    }
    return p;
  }

  /** Forgets `group` (after a purge deleted its record). */
  forget(group: string): void {
    this.ok.delete(group);
  }
}
