/**
 * Which fixed keys of a group each script of the Redis broker touches, in the order of its `KEYS`:
 * every key a script touches is one of them (no key is named inside a script; the upgrade script
 * of `./redis-legacy-lanes.ts` also declares the old keys it empties). Every script starts with a
 * prologue that names them (`K.ready`, `K.lease`, …); a helper that touches a key its script did
 * not declare fails loudly (nil key). `test/helpers/redis-key-check.ts` checks it at run time.
 */
import type { GroupKeys, KeyName } from './redis-keys.js';

/** Keys settling a flagged delivery may touch (its key's running count and parked lanes, wake-up). */
const SETTLE: readonly KeyName[] = ['meta', 'running', 'lanes', 'cpark', 'turn', 'wake'];
/** Keys putting an entry back into its lane touches (besides SETTLE's). */
const PUSH: readonly KeyName[] = ['ready', 'lanelist', 'seq'];

/** The declared keys of every script, by command name. */
export const SCRIPT_KEYS = {
  tasukiPublish: ['ready', 'delayed', 'body', 'wake', 'seq'],
  tasukiFetch: ['ready', 'delayed', 'lease', 'body', 'wake', 'seq', 'meta', 'lanelist', 'lanes', 'tpark', 'cpark', 'running', 'kstate', 'kidle', 'turn'],
  tasukiAck: ['lease', 'body', ...SETTLE],
  tasukiAckMany: ['lease', 'body', ...SETTLE],
  tasukiRetry: ['lease', 'body', 'delayed', ...PUSH, ...SETTLE],
  tasukiRelease: ['lease', ...PUSH, ...SETTLE],
  tasukiExtend: ['lease'],
  tasukiDeadLetter: ['lease', 'body', 'dead', 'deadBody', 'deadReason', ...SETTLE],
  tasukiListDead: ['dead', 'deadBody', 'deadReason'],
  tasukiRedriveDead: ['dead', 'deadBody', 'deadReason', 'body', 'wake', 'meta', 'lanes', 'turn', ...PUSH],
  tasukiDeleteDead: ['dead', 'deadBody', 'deadReason', 'meta'],
  tasukiCounts: ['ready', 'delayed', 'lease', 'dead', 'wake', 'seq', 'meta', 'lanelist', 'lanes', 'tpark', 'cpark', 'running', 'kstate', 'kidle', 'turn'],
  tasukiPublishFlow: ['ready', 'delayed', 'body', 'wake', 'seq', 'meta', 'lanelist', 'lanes', 'turn'],
  tasukiBackoffKey: ['kstate', 'kidle'],
  tasukiWaitReason: ['kstate', 'tpark', 'cpark'],
  tasukiShards: ['shards'],
  tasukiUnparkIdle: ['cpark', 'running', 'lanes', 'turn', 'wake'],
} as const satisfies Record<string, readonly KeyName[]>;

/** A script command name of the broker. */
export type ScriptName = keyof typeof SCRIPT_KEYS;

/** The Lua prologue of a script declaring `names`: `local K = {…}`. */
export function keyPrologue(names: readonly KeyName[]): string {
  const fields = names.map((n, i) => `${n} = KEYS[${i + 1}]`).join(', ');
  return `local K = { ${fields} }\n`;
}

/** The `KEYS` of each script for each group (shard), built once (kept as long as its key names are). */
export class ScriptKeyCache {
  private readonly cache = new WeakMap<GroupKeys, Map<ScriptName, string[]>>();

  /** The keys script `name` declares, for the group (shard) of `k`. */
  of(k: GroupKeys, name: ScriptName): string[] {
    let byScript = this.cache.get(k);
    if (byScript === undefined) {
      byScript = new Map();
      this.cache.set(k, byScript);
    }
    let keys = byScript.get(name);
    if (keys === undefined) {
      keys = fixedKeys(k, SCRIPT_KEYS[name]);
      byScript.set(name, keys);
    }
    return keys;
  }
}

/** The names `names` of fixed keys of the group (shard) of `k`. */
export function fixedKeys(k: GroupKeys, names: readonly KeyName[]): string[] {
  return names.map((n) => k[n]);
}
