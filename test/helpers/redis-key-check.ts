/**
 * Run-time check that every key a Redis broker script touches is one of its `KEYS` (issue 17:
 * Dragonfly and strict proxies refuse undeclared keys). {@link keyCheckPrologue} is a Lua prologue
 * that shadows `redis` with a table whose `call` / `pcall` check the key arguments of each command
 * against `KEYS` before running it, and raise an error (failing the script, hence the test) on an
 * undeclared key or on a command whose key positions are not listed here.
 *
 * `installKeyCheck()` prepends it to every script of `SCRIPTS` (`brokers/redis-scripts.ts`) before a
 * broker registers them; the vitest setup file `./redis-key-check-setup.ts` calls it when the
 * environment variable `TASUKI_REDIS_KEY_CHECK=1` is set, e.g.
 * `TASUKI_REDIS_KEY_CHECK=1 npx vitest run test/priorities.test.ts --maxWorkers=1`.
 */
import { SCRIPTS } from '../../brokers/redis-scripts.js';

/**
 * Key positions (1-based among the arguments after the command name) of every command the scripts
 * use: `first`, `last` (-1: the last argument), `step` — as `COMMAND INFO` reports them.
 */
export const KEY_SPECS: Readonly<Record<string, readonly [number, number, number]>> = {
  TIME: [0, 0, 0], PUBLISH: [0, 0, 0],
  GET: [1, 1, 1], SET: [1, 1, 1], INCR: [1, 1, 1], INCRBY: [1, 1, 1], DECR: [1, 1, 1], DECRBY: [1, 1, 1],
  DEL: [1, -1, 1], UNLINK: [1, -1, 1], EXISTS: [1, -1, 1], TYPE: [1, 1, 1], PEXPIRE: [1, 1, 1], EXPIRE: [1, 1, 1],
  HGET: [1, 1, 1], HSET: [1, 1, 1], HSETNX: [1, 1, 1], HMGET: [1, 1, 1], HDEL: [1, 1, 1], HINCRBY: [1, 1, 1], HEXISTS: [1, 1, 1], HLEN: [1, 1, 1], HGETALL: [1, 1, 1],
  LLEN: [1, 1, 1], LPUSH: [1, 1, 1], RPUSH: [1, 1, 1], LPOP: [1, 1, 1], RPOP: [1, 1, 1], LRANGE: [1, 1, 1], LREM: [1, 1, 1],
  SADD: [1, 1, 1], SREM: [1, 1, 1], SMEMBERS: [1, 1, 1], SCARD: [1, 1, 1], SISMEMBER: [1, 1, 1],
  ZADD: [1, 1, 1], ZREM: [1, 1, 1], ZSCORE: [1, 1, 1], ZCARD: [1, 1, 1], ZRANGE: [1, 1, 1], ZRANGEBYSCORE: [1, 1, 1], ZRANGEBYLEX: [1, 1, 1],
  ZREMRANGEBYRANK: [1, 1, 1], ZREMRANGEBYLEX: [1, 1, 1], ZREMRANGEBYSCORE: [1, 1, 1], ZLEXCOUNT: [1, 1, 1], ZCOUNT: [1, 1, 1], ZRANK: [1, 1, 1], ZINCRBY: [1, 1, 1],
};

/** The Lua prologue that checks every `redis.call` / `redis.pcall` of the script against `KEYS`. */
export function keyCheckPrologue(): string {
  const specs = Object.entries(KEY_SPECS)
    .map(([cmd, [first, last, step]]) => `${cmd} = {${first}, ${last}, ${step}}`)
    .join(', ');
  return `local redis = (function(r)
  local declared = {}
  for i = 1, #KEYS do declared[KEYS[i]] = true end
  local specs = { ${specs} }
  local function check(cmd, ...)
    local name = string.upper(cmd)
    local s = specs[name]
    if not s then error('tasuki key check: command ' .. name .. ' has no listed key positions') end
    if s[1] == 0 then return end
    local n = select('#', ...)
    local last = s[2]
    if last < 0 then last = n + 1 + last end
    local args = {...}
    for p = s[1], last, s[3] do
      local key = args[p]
      if key == nil then error('tasuki key check: ' .. name .. ' without its key argument ' .. p) end
      if not declared[key] then error('tasuki key check: ' .. name .. ' touches undeclared key ' .. tostring(key)) end
    end
  end
  return setmetatable({
    call = function(cmd, ...) check(cmd, ...) return r.call(cmd, ...) end,
    pcall = function(cmd, ...) check(cmd, ...) return r.pcall(cmd, ...) end,
  }, { __index = r })
end)(redis)
`;
}

/** Marks scripts that already carry the prologue. */
const CHECKED = Symbol('tasuki key check');

/** Prepends {@link keyCheckPrologue} to every script of the broker (idempotent). */
export function installKeyCheck(): void {
  const prologue = keyCheckPrologue();
  for (const def of Object.values(SCRIPTS) as Array<{ lua: string; [CHECKED]?: true }>) {
    if (def[CHECKED]) continue;
    def.lua = prologue + def.lua;
    def[CHECKED] = true;
  }
}
