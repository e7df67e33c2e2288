/**
 * Lua scripts of the Redis result backend, registered on the ioredis client with `defineCommand`
 * (ioredis sends them with EVALSHA and falls back to EVAL after a `NOSCRIPT`, e.g. after a restart).
 */

/** Name under which {@link WRITE_SCRIPT} is registered on the ioredis client. */
export const WRITE_COMMAND = 'tasukiBackendWrite';

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
local prev = redis.call('GET', KEYS[1])
local guard = ARGV[3]
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
  elseif guard == 'notSuccess' then
    pass = true
  else
    return redis.error_reply('ERR tasuki: unknown write guard ' .. tostring(guard))
  end
  if not pass then
    return {0, prev}
  end
elseif guard ~= 'absent' and guard ~= 'notFinal' and guard ~= 'notSuccess' then
  return redis.error_reply('ERR tasuki: unknown write guard ' .. tostring(guard))
end
if ARGV[4] == '1' then
  local rttl = tonumber(ARGV[6])
  if rttl == 0 then
    redis.call('DEL', KEYS[2])
  elseif rttl < 0 then
    redis.call('SET', KEYS[2], ARGV[5])
  else
    redis.call('SET', KEYS[2], ARGV[5], 'EX', rttl)
  end
end
local sttl = tonumber(ARGV[2])
if sttl == 0 then
  redis.call('DEL', KEYS[1])
elseif sttl < 0 then
  redis.call('SET', KEYS[1], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'EX', sttl)
end
if prev then
  return {1, prev}
end
return {1}
`;
