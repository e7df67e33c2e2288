/**
 * Which fixed keys of a group each script of the Redis broker touches, in the order of its `KEYS`.
 * Every script starts with a prologue that names them (`K.ready`, `K.lease`, …) and derives the
 * group's base from its first key (for the per-lane lists and per-key parking sets, named after a
 * priority and key); a helper that touches a key its script did not declare fails loudly (nil key).
 */
import { KEY_SUFFIXES, type GroupKeys, type KeyName } from './redis-keys.js';

/** Keys settling a flagged delivery may touch (its key's running count and parked lanes, wake-up). */
const SETTLE: readonly KeyName[] = ['meta', 'running', 'lanes', 'turn', 'wake'];

/** The declared keys of every script, by command name. */
export const SCRIPT_KEYS = {
  tasukiPublish: ['ready', 'delayed', 'body', 'wake', 'seq'],
  tasukiFetch: ['ready', 'delayed', 'lease', 'body', 'wake', 'seq', 'meta', 'lanes', 'laneset', 'tpark', 'running', 'kstate', 'kidle', 'turn'],
  tasukiAck: ['lease', 'body', ...SETTLE],
  tasukiAckMany: ['lease', 'body', ...SETTLE],
  tasukiRetry: ['lease', 'body', 'ready', 'delayed', 'laneset', ...SETTLE],
  tasukiRelease: ['lease', 'ready', 'laneset', ...SETTLE],
  tasukiExtend: ['lease'],
  tasukiDeadLetter: ['lease', 'body', 'dead', 'deadBody', 'deadReason', ...SETTLE],
  tasukiListDead: ['dead', 'deadBody', 'deadReason'],
  tasukiRedriveDead: ['dead', 'deadBody', 'deadReason', 'body', 'ready', 'wake', 'meta', 'lanes', 'laneset', 'turn'],
  tasukiDeleteDead: ['dead', 'deadBody', 'deadReason', 'meta'],
  tasukiCounts: ['ready', 'delayed', 'lease', 'dead', 'wake', 'meta', 'lanes', 'laneset', 'tpark', 'running', 'kstate', 'kidle', 'turn'],
  tasukiPublishFlow: ['ready', 'delayed', 'body', 'wake', 'seq', 'meta', 'lanes', 'laneset', 'turn'],
  tasukiBackoffKey: ['kstate', 'kidle'],
  tasukiPurgeFlow: ['ready', 'laneset'],
} as const satisfies Record<string, readonly KeyName[]>;

/** A script command name of the broker. */
export type ScriptName = keyof typeof SCRIPT_KEYS;

/** The Lua prologue of a script declaring `names`: `local K = {…}` and `local BASE`. */
export function keyPrologue(names: readonly KeyName[]): string {
  const fields = names.map((n, i) => `${n} = KEYS[${i + 1}]`).join(', ');
  const first = names[0] as KeyName;
  return `local K = { ${fields} }\nlocal BASE = string.sub(KEYS[1], 1, #KEYS[1] - ${KEY_SUFFIXES[first].length})\n`;
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
      keys = (SCRIPT_KEYS[name] as readonly KeyName[]).map((n) => k[n]);
      byScript.set(name, keys);
    }
    return keys;
  }
}
