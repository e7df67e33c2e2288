/**
 * Lua scripts of the Redis result backend, registered on the ioredis client with `defineCommand`
 * (ioredis sends them with EVALSHA and falls back to EVAL after a `NOSCRIPT`, e.g. after a restart).
 */

/** Name under which {@link WRITE_SCRIPT} is registered on the ioredis client. */
export const WRITE_COMMAND = 'tasukiBackendWrite';

/**
 * Lua function shared by {@link WRITE_SCRIPT} and {@link WRITE_MANY_SCRIPT}: one guarded write of a
 * state (and result) with their expiries; returns `written (0|1), previous state or false`.
 */
const WRITE_ONE = `
local function write_one(skey, rkey, state, sttl, guard, has_result, result, rttl)
  local prev = redis.call('GET', skey)
  if prev then
    local status = nil
    local ok, decoded = pcall(cjson.decode, prev)
    if ok and type(decoded) == 'table' and type(decoded.status) == 'string' then
      status = decoded.status
    end
    local pass
    if status == nil or status == 'success' or guard == 'absent' then
      pass = false
    elseif guard == 'notFinal' then
      pass = not (status == 'failure' or status == 'expired' or status == 'aborted')
    else
      pass = guard == 'notSuccess'
    end
    if not pass then return 0, prev end
  end
  if has_result == '1' then
    local r = tonumber(rttl)
    if r == 0 then
      redis.call('DEL', rkey)
    elseif r < 0 then
      redis.call('SET', rkey, result)
    else
      redis.call('SET', rkey, result, 'EX', r)
    end
  end
  local t = tonumber(sttl)
  if t == 0 then
    redis.call('DEL', skey)
  elseif t < 0 then
    redis.call('SET', skey, state)
  else
    redis.call('SET', skey, state, 'EX', t)
  end
  return 1, prev or false
end
`;

/**
 * Conditional write of a task state and its result, atomic on the server.
 *
 * KEYS[1] state key, KEYS[2] result key (same hash tag, so the same Cluster slot).
 * ARGV[1] state JSON, ARGV[2] state expiry in seconds (-1 forever, 0 not stored: the key is deleted,
 * N: `EX N`), ARGV[3] guard (`absent` | `notFinal` | `notSuccess`), ARGV[4] `1` when a result is given
 * else `0`, ARGV[5] result text, ARGV[6] result expiry (same encoding as ARGV[2]).
 *
 * The guard is evaluated against the stored state (an expired key does not exist in Redis, so it
 * counts as absent). A stored `success` refuses every guard. A stored state that is not a JSON
 * object with a string `status` refuses every guard too (nothing is overwritten; the caller reports it
 * as a decode error; `delete` clears it).
 *
 * Returns `{1, previous}` when written, `{0, previous}` when refused; `previous` is the stored state
 * JSON, or absent (nil) when none was stored.
 */
export const WRITE_SCRIPT = `
${WRITE_ONE}
local guard = ARGV[3]
if guard ~= 'absent' and guard ~= 'notFinal' and guard ~= 'notSuccess' then
  return redis.error_reply('ERR tasuki: unknown write guard ' .. tostring(guard))
end
local written, prev = write_one(KEYS[1], KEYS[2], ARGV[1], ARGV[2], guard, ARGV[4], ARGV[5], ARGV[6])
if prev then
  return {written, prev}
end
return {written}
`;

/** Name under which {@link WRITE_MANY_SCRIPT} is registered on the ioredis client. */
export const WRITE_MANY_COMMAND = 'tasukiBackendWriteMany';

/**
 * Several conditional writes in one script call (the backend coalesces the writes issued in the same
 * tick). Each write follows exactly the rules of {@link WRITE_SCRIPT}, in order.
 *
 * KEYS: state key and result key of each write, in pairs. ARGV: the six arguments of each write,
 * as for {@link WRITE_SCRIPT}. Returns `{written1, previous1, written2, previous2, ...}`; `previous`
 * is nil when no state was stored. The guards are checked by the caller before sending.
 */
export const WRITE_MANY_SCRIPT = `
${WRITE_ONE}
local out = {}
local n = #KEYS / 2
for i = 1, n do
  local a = (i - 1) * 6
  local written, prev = write_one(KEYS[2 * i - 1], KEYS[2 * i], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6])
  out[2 * i - 1] = written
  out[2 * i] = prev
end
return out
`;
