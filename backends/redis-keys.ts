/**
 * Key layout of the Redis result backend, for a task id `ID` and the prefix `P` (default `tasuki`):
 * - `P:{ID}:state`  — the task state, JSON text of a `TaskState`;
 * - `P:{ID}:result` — the result, superjson JSON text;
 * - `P:{ID}:final`  — pub/sub channel: a write that stores a final state publishes its status there.
 *
 * Every key of one task shares the Cluster hash tag `{ID}`, so they live in one slot and the write
 * script may touch both. Characters `{`, `}` and `%` of an id are percent-encoded in keys (an id
 * such as `}x` would otherwise end the hash tag early or leave it empty); every other id is used as is.
 */

/** Encodes a task id for use inside a hash tag: `%`, `{` and `}` become `%25`, `%7B`, `%7D`. */
export function encodeIdForKey(id: string): string {
  // Most ids (UUIDs) have none of the three: no regex, no new string.
  if (id.indexOf('{') < 0 && id.indexOf('}') < 0 && id.indexOf('%') < 0) return id;
  return id.replace(/[%{}]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0'));
}

/** The hash-tagged start of every key of a task: `prefix:{id}` (followed by `:state`, `:result`, `:final`). */
export function taskTag(prefix: string, id: string): string {
  return `${prefix}:{${encodeIdForKey(id)}}`;
}

/** The two keys of a task: `prefix:{id}:state` and `prefix:{id}:result`. */
export function redisKeys(prefix: string, id: string): { state: string; result: string } {
  const tag = taskTag(prefix, id);
  return { state: `${tag}:state`, result: `${tag}:result` };
}

/** The pub/sub channel on which a task's final writes are announced: `prefix:{id}:final` (same hash tag). */
export function finalChannel(prefix: string, id: string): string {
  return `${taskTag(prefix, id)}:final`;
}
