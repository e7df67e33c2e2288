/**
 * The schedule store of the Redis backend: one hash `P:{schedules}` (P: the backend prefix), field
 * = schedule name, value = `<rev>|<record JSON>`. The compare-and-set write is one Lua script, so it
 * is atomic however many processes upsert or tick at once.
 */
import type { RedisClient } from '../brokers/redis-cluster.js';
import type { TasukiError } from '../src/errors.js';
import type { ScheduleStore, StoredSchedule } from '../src/schedule/store.js';

/** Compare-and-set of one field: writes `<expected + 1>|data` when the stored revision is `expected` (0: absent). */
const CAS_SCRIPT = `
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local rev = 0
if cur then rev = tonumber(string.match(cur, '^(%d+)|')) end
if rev ~= tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], tostring(rev + 1) .. '|' .. ARGV[2])
return 1
`;

/** The key of the schedules hash under `prefix`. */
export function schedulesKey(prefix: string): string {
  return `${prefix}:{schedules}`;
}

function parse(name: string, value: string): StoredSchedule {
  const bar = value.indexOf('|');
  return { name, rev: Number(value.slice(0, bar)), data: value.slice(bar + 1) };
}

/** {@link ScheduleStore} on the Redis backend's connection. */
export class RedisScheduleStore implements ScheduleStore {
  private readonly key: string;

  /**
   * @param client the backend's connection
   * @param prefix the backend's key prefix
   * @param ready connects (or rejects with the backend's typed error)
   * @param wrap turns a driver error into the backend's typed error
   */
  constructor(
    private readonly client: RedisClient,
    prefix: string,
    private readonly ready: () => Promise<void>,
    private readonly wrap: (err: unknown, op: string) => TasukiError,
  ) {
    this.key = schedulesKey(prefix);
  }

  private async run<T>(op: string, work: () => Promise<T>): Promise<T> {
    await this.ready();
    try {
      return await work();
    } catch (err) {
      throw this.wrap(err, op);
    }
  }

  /** @inheritdoc */
  readSchedule(name: string): Promise<StoredSchedule | null> {
    return this.run('readSchedule', async () => {
      const v = await this.client.hget(this.key, name);
      return v === null ? null : parse(name, v);
    });
  }

  /** @inheritdoc */
  listSchedules(): Promise<StoredSchedule[]> {
    return this.run('listSchedules', async () => {
      const all = await this.client.hgetall(this.key);
      return Object.entries(all).map(([name, v]) => parse(name, v));
    });
  }

  /** @inheritdoc */
  writeSchedule(name: string, data: string, expectedRev: number): Promise<boolean> {
    return this.run('writeSchedule', async () => (await this.client.eval(CAS_SCRIPT, 1, this.key, name, data, String(expectedRev))) === 1);
  }

  /** @inheritdoc */
  deleteSchedule(name: string): Promise<boolean> {
    return this.run('deleteSchedule', async () => (await this.client.hdel(this.key, name)) > 0);
  }
}
