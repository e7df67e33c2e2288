/**
 * Flow journal storage of the Redis backend: one hash per flow, `P:{ID}:journal`, under the task's
 * hash tag (same Cluster slot as its state). Fields: `e:<key>` entries (`P`/`F` for pending/final,
 * then the entry's JSON), `s:<name>:<n>` signal payloads with their counter `n:<name>`, and
 * `!live`/`!liveAt`/`!wanted` for suspensions. Every write is one Lua script (atomic) that also sets
 * the hash's expiry.
 */
import type { RedisClient } from '../brokers/redis-cluster.js';
import type { Expiry } from '../src/backend.js';
import type { TasukiError } from '../src/errors.js';
import type { EnterOutcome, FlowJournalStore, JournalEntry, JournalPutMode, JournalPutOutcome, JournalSnapshot, SuspendOutcome } from '../src/journal.js';
import { taskTag } from './redis-keys.js';

const TTL = `
local function ttl(k, t)
  t = tonumber(t)
  if t < 0 then redis.call('PERSIST', k) elseif t > 0 then redis.call('EXPIRE', k, t) end
end
`;

/** KEYS[1] hash; ARGV field, value (status letter + JSON), mode, ttl → {written, stored value}. */
const PUT = `${TTL}
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and (ARGV[3] == 'absent' or string.sub(cur, 1, 1) ~= 'P') then return {0, cur} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
ttl(KEYS[1], ARGV[4])
return {1, ARGV[2]}
`;

/** KEYS[1] hash; ARGV name, payload, ttl → index. */
const SIGNAL = `${TTL}
local n = redis.call('HINCRBY', KEYS[1], 'n:' .. ARGV[1], 1) - 1
redis.call('HSET', KEYS[1], 's:' .. ARGV[1] .. ':' .. n, ARGV[2])
ttl(KEYS[1], ARGV[3])
return n
`;

/** KEYS[1] hash; ARGV runId, token, now, leaseMs, ttl → {ok, until}. */
const ENTER = `${TTL}
local holder = redis.call('HGET', KEYS[1], '!holder')
local untilAt = tonumber(redis.call('HGET', KEYS[1], '!holderUntil') or '0')
local now = tonumber(ARGV[3])
ttl(KEYS[1], ARGV[5])
if (not holder) or untilAt <= now or holder == ARGV[1] then
  local u = string.format('%.0f', now + tonumber(ARGV[4]))
  redis.call('HSET', KEYS[1], '!holder', ARGV[1], '!holderUntil', u)
  return {1, u}
end
local wanted = redis.call('HGET', KEYS[1], '!wanted')
if (not wanted) or now < tonumber(wanted) then redis.call('HSET', KEYS[1], '!wanted', ARGV[3]) end
if redis.call('HGET', KEYS[1], '!live') == ARGV[2] then redis.call('HSET', KEYS[1], '!liveAt', string.format('%.0f', untilAt)) end
return {0, string.format('%.0f', untilAt)}
`;

/** KEYS[1] hash; ARGV runId. */
const LEAVE = `
if redis.call('HGET', KEYS[1], '!holder') == ARGV[1] then redis.call('HDEL', KEYS[1], '!holder', '!holderUntil') end
return 1
`;

/** KEYS[1] hash; ARGV token, wakeAt, ttl, runId → {reschedule, at}. */
const SUSPEND = `${TTL}
if ARGV[4] ~= '' and redis.call('HGET', KEYS[1], '!holder') == ARGV[4] then redis.call('HDEL', KEYS[1], '!holder', '!holderUntil') end
local live = redis.call('HGET', KEYS[1], '!live')
local liveAt = tonumber(redis.call('HGET', KEYS[1], '!liveAt') or '0')
local wanted = redis.call('HGET', KEYS[1], '!wanted')
local at = tonumber(ARGV[2])
if wanted and tonumber(wanted) < at then at = tonumber(wanted) end
if (not live) or live == ARGV[1] or at < liveAt then
  redis.call('HSET', KEYS[1], '!live', ARGV[1], '!liveAt', string.format('%.0f', at))
  redis.call('HDEL', KEYS[1], '!wanted')
  ttl(KEYS[1], ARGV[3])
  return {1, string.format('%.0f', at)}
end
if (not wanted) or tonumber(ARGV[2]) < tonumber(wanted) then redis.call('HSET', KEYS[1], '!wanted', ARGV[2]) end
ttl(KEYS[1], ARGV[3])
return {0, string.format('%.0f', liveAt)}
`;

/** KEYS[1] hash; ARGV fields to delete (the suspension fields too). */
const REMOVE = `
redis.call('HDEL', KEYS[1], '!live', '!liveAt', '!wanted', '!holder', '!holderUntil', unpack(ARGV))
return 1
`;

interface JournalCommands {
  tasukiJournalPut(key: string, field: string, value: string, mode: string, ttl: string): Promise<[number, string]>;
  tasukiJournalSignal(key: string, name: string, payload: string, ttl: string): Promise<number>;
  tasukiJournalSuspend(key: string, token: string, at: string, ttl: string, runId: string): Promise<[number, string]>;
  tasukiJournalEnter(key: string, runId: string, token: string, now: string, leaseMs: string, ttl: string): Promise<[number, string]>;
  tasukiJournalLeave(key: string, runId: string): Promise<number>;
  tasukiJournalRemove(key: string, ...fields: string[]): Promise<number>;
}

/** Flow journals on the Redis connection of a `RedisBackend`. */
export class RedisJournal implements FlowJournalStore {
  private readonly cmd: JournalCommands;

  /**
   * @param client the backend's connection
   * @param prefix the backend's key prefix
   * @param wrap turns a driver error into the backend's typed error
   */
  constructor(
    private readonly client: RedisClient,
    private readonly prefix: string,
    private readonly wrap: (err: unknown, op: string, bytes?: number) => TasukiError,
  ) {
    client.defineCommand('tasukiJournalPut', { numberOfKeys: 1, lua: PUT });
    client.defineCommand('tasukiJournalSignal', { numberOfKeys: 1, lua: SIGNAL });
    client.defineCommand('tasukiJournalSuspend', { numberOfKeys: 1, lua: SUSPEND });
    client.defineCommand('tasukiJournalRemove', { numberOfKeys: 1, lua: REMOVE });
    client.defineCommand('tasukiJournalEnter', { numberOfKeys: 1, lua: ENTER });
    client.defineCommand('tasukiJournalLeave', { numberOfKeys: 1, lua: LEAVE });
    this.cmd = client as unknown as JournalCommands;
  }

  private key(flowId: string): string {
    return `${taskTag(this.prefix, flowId)}:journal`;
  }

  /** @inheritdoc */
  async read(flowId: string): Promise<JournalSnapshot> {
    let all: Record<string, string>;
    try {
      all = await this.client.hgetall(this.key(flowId));
    } catch (err) {
      throw this.wrap(err, 'journal read');
    }
    const out: JournalSnapshot = { entries: [], signals: {} };
    const signals: Array<{ name: string; n: number; payload: string }> = [];
    for (const [field, value] of Object.entries(all)) {
      if (field.startsWith('e:')) out.entries.push(JSON.parse(value.slice(1)) as JournalEntry);
      else if (field.startsWith('s:')) {
        const cut = field.lastIndexOf(':');
        signals.push({ name: field.slice(2, cut), n: Number(field.slice(cut + 1)), payload: value });
      }
    }
    signals.sort((a, b) => a.n - b.n);
    for (const s of signals) (out.signals[s.name] ??= []).push(s.payload);
    return out;
  }

  /** @inheritdoc */
  async put(flowId: string, entry: JournalEntry, mode: JournalPutMode, ttl: Expiry): Promise<JournalPutOutcome> {
    const value = (entry.status === 'pending' ? 'P' : 'F') + JSON.stringify(entry);
    let r: [number, string];
    try {
      r = await this.cmd.tasukiJournalPut(this.key(flowId), `e:${entry.key}`, value, mode, String(ttl));
    } catch (err) {
      throw this.wrap(err, 'journal put', value.length);
    }
    return { written: r[0] === 1, entry: JSON.parse(r[1].slice(1)) as JournalEntry };
  }

  /** @inheritdoc */
  async signal(flowId: string, name: string, payload: string, ttl: Expiry): Promise<number> {
    try {
      return Number(await this.cmd.tasukiJournalSignal(this.key(flowId), name, payload, String(ttl)));
    } catch (err) {
      throw this.wrap(err, 'journal signal', payload.length);
    }
  }

  /** @inheritdoc */
  async enter(flowId: string, runId: string, token: string, now: number, leaseMs: number, ttl: Expiry): Promise<EnterOutcome> {
    try {
      const r = await this.cmd.tasukiJournalEnter(this.key(flowId), runId, token, String(Math.round(now)), String(Math.round(leaseMs)), String(ttl));
      return { ok: r[0] === 1, until: Number(r[1]) };
    } catch (err) {
      throw this.wrap(err, 'journal enter');
    }
  }

  /** @inheritdoc */
  async leave(flowId: string, runId: string): Promise<void> {
    try {
      await this.cmd.tasukiJournalLeave(this.key(flowId), runId);
    } catch (err) {
      throw this.wrap(err, 'journal leave');
    }
  }

  /** @inheritdoc */
  async suspend(flowId: string, token: string, wakeAt: number, ttl: Expiry, runId = ''): Promise<SuspendOutcome> {
    try {
      const r = await this.cmd.tasukiJournalSuspend(this.key(flowId), token, String(Math.round(wakeAt)), String(ttl), runId);
      return { reschedule: r[0] === 1, at: Number(r[1]) };
    } catch (err) {
      throw this.wrap(err, 'journal suspend');
    }
  }

  /** @inheritdoc */
  async remove(flowId: string, keys: ReadonlyArray<string>): Promise<void> {
    try {
      await this.cmd.tasukiJournalRemove(this.key(flowId), ...keys.map((k) => `e:${k}`));
    } catch (err) {
      throw this.wrap(err, 'journal remove');
    }
  }

  /** @inheritdoc */
  async delete(flowId: string): Promise<void> {
    try {
      await this.client.del(this.key(flowId));
    } catch (err) {
      throw this.wrap(err, 'journal delete');
    }
  }
}
