/**
 * Lua script of the Redis result backend, registered on the ioredis client with `defineCommand`
 * (ioredis sends it with EVALSHA and falls back to EVAL after a `NOSCRIPT`, e.g. after a restart).
 */
import { TASK_STATUSES } from '../src/state.js';
import { DELTA_HASH_DIGITS } from './redis-delta.js';

/** Name under which {@link WRITE_SCRIPT} is registered on the ioredis client. */
export const WRITE_COMMAND = 'tasukiBackendWrite';

/** The ops made so far, by state expiry, then by the code of their six letters (see {@link writeOp}). */
const OPS = new Map<number, string[]>();
/** Most state expiries whose ops are kept (a server uses one or two). */
const MAX_CACHED_TTLS = 16;

/**
 * The `op` argument of a write: six letters and the state expiry, e.g. `a--p--60` or `nsr-id-1`.
 * 1. guard: `a` absent, `n` notFinal, `s` notSuccess;
 * 2. the new status when it is final (`s` success, `f` failure, `e` expired, `a` aborted), else `-`;
 * 3. `r` when a result is written (then the write has a result key and two more arguments), else `-`;
 * 4. `p` when the replaced state is returned also for a write that passes, `-` when only the state
 *    that refused a write is (saves sending back a state nobody reads);
 * 5. `i` when the write keeps the task index (then one more argument follows, see
 *    `./redis-index-plan.ts`), else `-`;
 * 6. `d` when the state argument is a delta against the stored state (`./redis-delta.ts`), else `-`;
 * 7. the state expiry in seconds (-1 forever, 0 not stored, N).
 */
export function writeOp(
  guard: 'absent' | 'notFinal' | 'notSuccess',
  status: string,
  hasResult: boolean,
  stateTtl: number,
  previousWhenWritten = true,
  indexed = false,
  delta = false,
): string {
  const g = guard === 'absent' ? 0 : guard === 'notFinal' ? 1 : 2;
  const f = status === 'success' ? 1 : status === 'failure' ? 2 : status === 'expired' ? 3 : status === 'aborted' ? 4 : 0;
  // Every write builds its op: the ops of the expiries in use are made once each and kept.
  const code = ((((g * 5 + f) * 2 + +hasResult) * 2 + +previousWhenWritten) * 2 + +indexed) * 2 + +delta;
  let ops = OPS.get(stateTtl);
  if (ops === undefined) {
    if (OPS.size >= MAX_CACHED_TTLS) OPS.clear();
    OPS.set(stateTtl, (ops = []));
  }
  return (ops[code] ??=
    'ans'.charAt(g) + '-sfea'.charAt(f) + (hasResult ? 'r' : '-') + (previousWhenWritten ? 'p' : '-') + (indexed ? 'i' : '-') + (delta ? 'd' : '-') + stateTtl);
}

/** Lua table status → offset of its set within a group's index keys. */
const STATUS_OFFSETS = `{ ${TASK_STATUSES.map((s, i) => `['${s}'] = ${i}`).join(', ')} }`;
/** Lua list of the statuses, in `TASK_STATUSES` order (offset + 1 → name). */
const STATUS_NAMES = `{ ${TASK_STATUSES.map((s) => `'${s}'`).join(', ')} }`;

/**
 * Several conditional writes of task states (and results) in one call, each atomic on the server
 * and done in order. The backend sends the writes of one event-loop tick together.
 *
 * Per write, in order:
 * - KEYS: the state key, then (only when a result is written) the result key — same hash tag; after
 *   the writes' keys, the index sets the call's writes may touch (`./redis-index-plan.ts`), and last
 *   the set of indexed groups — every key the script touches is declared;
 * - ARGV: the state JSON, the op (see {@link writeOp}), then (only with a result) the result text
 *   and its expiry (-1 forever, 0 not stored: the key is deleted, N: `EX N`).
 *
 * Returns `{written1, previous1, written2, previous2, ...}`: `written` is 1 or 0, `previous` the
 * state JSON stored before (or that refused the write), nil when none was stored (or, for a write
 * that passed without the `p` flag, not asked for). A delta write (`d`) whose basis is not the
 * stored text does nothing and returns `written` 2: the caller sends it again whole. A write that
 * declares only the index set of the status its caller expects stored (and its new one) and finds
 * another status stored does nothing (after its guard passed: a refused write answers as always)
 * and returns `written` 3: the caller sends it again with all its group's sets declared.
 *
 * A delta write's state argument is rebuilt into the new state JSON from the stored text first
 * (`./redis-delta.ts`: its length and SHA-1 prefix are checked, then the edits applied with
 * `string.sub` and `table.concat`); the guard, the stores and the notice then see the whole text.
 *
 * The guard is evaluated against the stored state (an expired key does not exist in Redis, so it
 * counts as absent). A stored `success` refuses every guard.
 *
 * The stored status is found by a plain string search instead of decoding the JSON (decoding was
 * most of the script's CPU). Every state is written as `JSON.stringify` output, where a `"` inside a
 * string is always escaped: an occurrence of `"status":"` preceded by `{` or `,` therefore starts a
 * real key `status` (inside a string that quote would be escaped, and a string never ends right
 * before a letter). A task state has no user-defined keys and its writers put `status` before its
 * one nested object (`error`), so the first such key is the state's own. The value runs to the next
 * quote (statuses contain none). A stored value in which no such key is found (not JSON, another
 * format) refuses every guard: nothing is overwritten; the caller reports it as a decode error;
 * `delete` clears it.
 *
 * An `absent` write of a stored state is one native `SET NX GET [EX]` (Redis ≥ 7.0: check and set in
 * one command, which returns the value that refused it). Older servers reject NX with GET, without
 * effect; the script then falls back to GET and SET.
 *
 * A write that stores a final state publishes a notice on `<prefix>:{<id>}:final` (the state key
 * with `:state` replaced), the channel `RedisBackend.watchFinal` listens to: the state JSON, then,
 * when the write stored a result, a newline and the result text (state JSON never holds a raw
 * newline). Redis delivers the message once the script has finished, so a subscriber that reads
 * the state on receiving it sees the write.
 */
export const WRITE_SCRIPT = `
local FINAL = { s = 'success', f = 'failure', e = 'expired', a = 'aborted' }

local function stored_status(prev)
  local from = 1
  while true do
    local s, e = string.find(prev, '"status":"', from, true)
    if not s then return nil end
    local before = string.byte(prev, s - 1)
    if before == 123 or before == 44 then
      local q = string.find(prev, '"', e + 1, true)
      if not q then return nil end
      return string.sub(prev, e + 1, q - 1)
    end
    from = s + 1
  end
end

-- Rebuilds a delta write's state from the stored text (see ./redis-delta.ts); nil when the stored
-- text is not the delta's basis (or none is stored). One or two edits (the worker's writes) are one
-- concatenation; more go through a table.
local function delta_edit(d, from)
  local a = string.find(d, '\\n', from, true)
  local b = string.find(d, '\\n', a + 1, true)
  local c = string.find(d, '\\n', b + 1, true)
  return tonumber(string.sub(d, from, a - 1)), tonumber(string.sub(d, a + 1, b - 1)), string.sub(d, b + 1, (c or #d + 1) - 1), c
end

local function apply_delta(prev, d)
  if not prev then return nil end
  local nl1 = string.find(d, '\\n', 1, true)
  local nl2 = string.find(d, '\\n', nl1 + 1, true)
  if tonumber(string.sub(d, 1, nl1 - 1)) ~= #prev then return nil end
  if string.sub(redis.sha1hex(prev), 1, ${DELTA_HASH_DIGITS}) ~= string.sub(d, nl1 + 1, nl2 - 1) then return nil end
  local at1, del1, t1, c1 = delta_edit(d, nl2 + 1)
  if not c1 then return string.sub(prev, 1, at1) .. t1 .. string.sub(prev, at1 + del1 + 1) end
  local at2, del2, t2, c2 = delta_edit(d, c1 + 1)
  if not c2 then
    return string.sub(prev, 1, at1) .. t1 .. string.sub(prev, at1 + del1 + 1, at2) .. t2 .. string.sub(prev, at2 + del2 + 1)
  end
  local out = { string.sub(prev, 1, at1), t1, string.sub(prev, at1 + del1 + 1, at2), t2 }
  local pos = at2 + del2
  local c = c2
  while c do
    local at, del, t
    at, del, t, c = delta_edit(d, c + 1)
    out[#out + 1] = string.sub(prev, pos + 1, at)
    out[#out + 1] = t
    pos = at + del
  end
  out[#out + 1] = string.sub(prev, pos + 1)
  return table.concat(out)
end

-- Stores a value with an expiry in seconds: 0 deletes the key (not stored), -1 keeps it forever.
local function store(key, value, ttl)
  if ttl == 0 then
    redis.call('DEL', key)
  elseif ttl < 0 then
    redis.call('SET', key, value)
  else
    redis.call('SET', key, value, 'EX', ttl)
  end
end

-- Moves a task's index entry with its write (see ./redis-index-plan.ts): out of the previous
-- status's set, into the new one's; a state not stored leaves it. An entry already in its set only
-- gets its new score (the set does not grow: no cap check). A set is trimmed in steps: once an add
-- takes it past its cap plus a slack of 1 % (cap // 100), it goes back to its cap (oldest first), so
-- a set never holds more than cap + cap // 100 entries and the trim runs once per slack + 1 adds at
-- the cap instead of on every add. A set's size is read (ZCARD) once per call, at its first new
-- entry, and counted here after that (CARD: set -> entries; every change of a counted set in this
-- call goes through it). The entry that creates a set adds its group to the set of indexed groups,
-- unless it came out of another of the group's sets (a group with any entry is listed already).
local STATUS_OFFSET = ${STATUS_OFFSETS}
local STATUS_NAME = ${STATUS_NAMES}
local CARD = {}

-- The fields of a write's index argument: position, new status offset, score, cap, the id, and the
-- declared set of the expected status as 8 x position + offset (nil when none is; it travels in the
-- offset field, as offset + 8 x that).
local function index_fields(ix, skey)
  local a = string.find(ix, '\\n', 1, true)
  local b = string.find(ix, '\\n', a + 1, true)
  local c = string.find(ix, '\\n', b + 1, true)
  local d = string.find(ix, '\\n', c + 1, true)
  local off = tonumber(string.sub(ix, a + 1, b - 1))
  local old = false
  if off > 7 then
    old = math.floor(off / 8)
    off = off % 8
  end
  local id = string.sub(ix, d + 1)
  if id == '' then id = string.sub(skey, #KEYS[#KEYS] - 7, -8) end
  return tonumber(string.sub(ix, 1, a - 1)), off, string.sub(ix, b + 1, c - 1), tonumber(string.sub(ix, c + 1, d - 1)), id, old
end

-- Whether the write's entry may move from prev_status with the sets its call declares: all of its
-- group's, or (a write declaring its new set alone, with the expected one) that of the expected status.
local function declared(pos, off, old, prev_status)
  if pos > 0 then return true end
  local po = prev_status and STATUS_OFFSET[prev_status]
  if not po or po == off then return true end
  return old and old % 8 == po
end

local function index_one(pos, off, score, cap, id, expected, prev_status, ttl)
  local groups = KEYS[#KEYS]
  local plen = #groups - 10
  local set
  local moved = false
  if pos > 0 then
    set = KEYS[pos + off]
    local po = prev_status and STATUS_OFFSET[prev_status]
    if po and po ~= off then
      local old = KEYS[pos + po]
      if redis.call('ZREM', old, id) == 1 then
        moved = true
        if CARD[old] then CARD[old] = CARD[old] - 1 end
      end
    end
  else
    set = KEYS[-pos]
    local po = expected and prev_status and STATUS_OFFSET[prev_status]
    if po and po ~= off then
      local old = KEYS[(expected - po) / 8]
      if redis.call('ZREM', old, id) == 1 then
        moved = true
        if CARD[old] then CARD[old] = CARD[old] - 1 end
      end
    end
  end
  if ttl == 0 then
    if redis.call('ZREM', set, id) == 1 and CARD[set] then CARD[set] = CARD[set] - 1 end
    return
  end
  if redis.call('ZADD', set, score, id) == 1 then
    local n = CARD[set]
    if n then n = n + 1 else n = redis.call('ZCARD', set) end
    if n == 1 and not moved then redis.call('SADD', groups, string.sub(set, plen + 5, #set - #STATUS_NAME[off + 1] - 1)) end
    if n > cap + math.floor(cap / 100) then
      redis.call('ZREMRANGEBYRANK', set, 0, -cap - 1)
      n = cap
    end
    CARD[set] = n
  end
end

local function write_one(skey, rkey, state, op, result, rttl, ix)
  local g = string.sub(op, 1, 1)
  if g ~= 'a' and g ~= 'n' and g ~= 's' then
    return redis.error_reply('ERR tasuki: malformed write op ' .. tostring(op))
  end
  local final = FINAL[string.sub(op, 2, 2)]
  local t = tonumber(string.sub(op, 7))
  local prev
  local stored = false
  if g == 'a' and t ~= 0 then
    if t < 0 then
      prev = redis.pcall('SET', skey, state, 'NX', 'GET')
    else
      prev = redis.pcall('SET', skey, state, 'NX', 'GET', 'EX', t)
    end
    if type(prev) == 'table' then
      prev = redis.call('GET', skey)
    elseif prev then
      return 0, prev
    else
      stored = true
    end
  else
    prev = redis.call('GET', skey)
    if string.sub(op, 6, 6) == 'd' then
      state = apply_delta(prev, state)
      if not state then return 2, false end
    end
  end
  local ps = nil
  if prev then
    local pass = false
    if g ~= 'a' then
      ps = stored_status(prev)
      local status = ps
      if status == nil or status == 'success' then
        pass = false
      elseif g == 'n' then
        pass = not (status == 'failure' or status == 'expired' or status == 'aborted')
      else
        pass = true
      end
    end
    if not pass then return 0, prev end
  end
  local pos, off, score, cap, id, expected
  if ix then
    -- The guard found the previous status already (an absent write that passes has none). A write
    -- that declared only its expected set and finds another status does nothing: it goes again
    -- with all its group's sets (an absent write that passes has stored its state: prev is nil).
    pos, off, score, cap, id, expected = index_fields(ix, skey)
    if not declared(pos, off, expected, ps) then return 3, false end
  end
  if rkey then store(rkey, result, tonumber(rttl)) end
  if not stored then store(skey, state, t) end
  if ix then index_one(pos, off, score, cap, id, expected, ps, t) end
  if final then
    -- The notice carries the write: the state, then (when this write stored one) a newline and the result.
    local notice = state
    if rkey and tonumber(rttl) ~= 0 then notice = state .. '\\n' .. result end
    redis.call('PUBLISH', string.sub(skey, 1, -7) .. ':final', notice)
  end
  if string.sub(op, 4, 4) ~= 'p' then return 1, false end
  return 1, prev or false
end

local out = {}
local k = 1
local a = 1
local i = 0
local n = #ARGV
while a <= n do
  local op = ARGV[a + 1]
  local written, prev
  local indexed = string.sub(op, 5, 5) == 'i'
  if string.sub(op, 3, 3) == 'r' then
    written, prev = write_one(KEYS[k], KEYS[k + 1], ARGV[a], op, ARGV[a + 2], ARGV[a + 3], indexed and ARGV[a + 4])
    k = k + 2
    a = a + 4
  else
    written, prev = write_one(KEYS[k], false, ARGV[a], op, nil, nil, indexed and ARGV[a + 2])
    k = k + 1
    a = a + 2
  end
  if indexed then a = a + 1 end
  if type(written) == 'table' then return written end
  out[i + 1] = written
  out[i + 2] = prev
  i = i + 2
end
return out
`;
