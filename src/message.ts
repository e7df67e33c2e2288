/**
 * Wire format of task messages (version 1) and the value codec.
 *
 * A message body is one JSON object:
 * ```json
 * {"v":1,"id":"…","group":"g","name":"add","args":{"json":[1,2]},
 *  "retriesLeft":3,"backoff":{"type":"exponential","delayMs":1000,"maxDelayMs":300000,"jitter":0.5},
 *  "sentAt":1700000000000}
 * ```
 * Unset `runAt`, `expireAt`, `timeoutMs`, `firstUnknownAt` (null) and `retriesUsed` 0 may be absent.
 * `args` (and stored results/progress) are superjson documents `{"json": …, "meta"?: …}`: `json` is
 * plain JSON; `meta` (optional) tells how to revive Date, Map, Set, BigInt, undefined, RegExp, Error,
 * URL… A producer in another language may send `{"json": [...]}` without `meta`.
 */
import superjson from 'superjson';
import { DecodeError, NotSerializableError } from './errors.js';

/** Current wire format version. */
export const WIRE_VERSION = 1;

/** Longest task id a message may carry (explicit ids sent by a client are at most 200). */
export const MAX_WIRE_ID_CHARS = 1000;

/** Retry backoff policy, carried in each message. */
export interface Backoff {
  /** `fixed`: always `delayMs`; `exponential`: `delayMs * 2^(retriesUsed)`, capped at `maxDelayMs`. */
  type: 'fixed' | 'exponential';
  /** Base delay in ms (≥ 0). */
  delayMs: number;
  /** Cap of the delay in ms (exponential). */
  maxDelayMs?: number;
  /** Fraction 0..1 of the delay that is randomised (0.5: delay × [0.5, 1]). 0 or absent: none. */
  jitter?: number;
}

/** The decoded task message (wire format v1). */
export interface TaskMessage {
  /** Wire format version. */
  v: 1;
  /** Task id (unique; also the idempotency key when given by the sender). */
  id: string;
  /** Group (queue) name. */
  group: string;
  /** Task name within the group. */
  name: string;
  /** superjson document of the argument array. */
  args: EncodedValue;
  /** Retries still allowed after a failure of the coming run. */
  retriesLeft: number;
  /** Retries used so far. */
  retriesUsed: number;
  /** Backoff between retries. */
  backoff: Backoff;
  /** When the client sent it (epoch ms). */
  sentAt: number;
  /** When the task was scheduled to run (epoch ms), if delayed; used to measure lateness. */
  runAt: number | null;
  /** Epoch ms after which the task must not run any more. */
  expireAt: number | null;
  /** Per-task handler timeout in ms. */
  timeoutMs: number | null;
  /** Set by workers that did not know the task name: when that was first seen (rolling deploys). */
  firstUnknownAt: number | null;
  /** Durable flows only (absent on other messages): see {@link FlowMessageInfo}. */
  flow?: FlowMessageInfo;
  /**
   * Optional trace context of the send (W3C `traceparent` / `tracestate` keys), set by a tracing
   * instrumentation (`tasuki/otel`). Readers that do not know it ignore it; a malformed one is dropped.
   */
  trace?: Record<string, string>;
  /** Priority 0..9 when sent with one (optional; a reader that does not know it ignores it). */
  priority?: number;
  /** Flow-control key when sent with one (optional; a reader that does not know it ignores it). */
  key?: string;
}

/** What a message of a durable flow, or of a flow's child task, carries (read by `src/flow/`). */
export interface FlowMessageInfo {
  /** Which message of the flow this is (wake-ups get their own); absent on the one sent by the client. */
  token?: string;
  /** A wake-up: its arguments are those stored in the flow's journal. */
  wake?: boolean;
  /** On a child task: the flow to wake when it ends. */
  parent?: { id: string; group: string; name: string };
  /** On a child of a counted fan-in (`src/flow/fan-in.ts`): where it counts itself in, and how many children there are. */
  fanIn?: { signal: string; total: number; index: number; settled?: boolean };
}

/** Most keys of a message's `trace` field, their form, and the longest value (characters); beyond them it is dropped. */
const TRACE_MAX_KEYS = 8;
const TRACE_KEY = /^[A-Za-z0-9_.-]{1,64}$/;
const TRACE_MAX_CHARS = 512;

/** The `trace` field of a raw message when well formed (a few short string entries), else undefined. */
function readTrace(v: unknown): Record<string, string> | undefined {
  if (!isObject(v)) return undefined;
  const keys = Object.keys(v);
  if (keys.length === 0 || keys.length > TRACE_MAX_KEYS) return undefined;
  const out: Record<string, string> = {};
  for (const k of keys) {
    const x = v[k];
    if (typeof x !== 'string' || !TRACE_KEY.test(k) || k === '__proto__' || x.length > TRACE_MAX_CHARS) return undefined;
    out[k] = x;
  }
  return out;
}

/** A superjson document. */
export interface EncodedValue {
  /** Plain JSON part. */
  json: unknown;
  /** Type annotations for revival (optional). */
  meta?: unknown;
}

/**
 * Deepest nesting of arrays, objects, maps and sets a value may have (levels below the top). Deeper
 * values are refused with {@link NotSerializableError}: encoding and decoding are recursive, and a
 * stack overflow must not surface as a plain `RangeError` (at `send` or in a worker).
 */
export const MAX_VALUE_DEPTH = 1000;

/** Longest path shown in a {@link NotSerializableError} message (a deep path is cut in the middle). */
const MAX_PATH_CHARS = 200;

/** Encodes any supported value to a superjson document; throws {@link NotSerializableError}. */
export function encodeValue(value: unknown, what = 'value'): EncodedValue {
  try {
    assertSerializable(value, what, new Set(), 0);
  } catch (err) {
    if (err instanceof NotSerializableError) throw err;
    // A getter or proxy trap that throws, or a stack overflow in a walk not bounded by the depth.
    throw new NotSerializableError(`${what} cannot be read: ${errorText(err)}`, err);
  }
  try {
    const out = superjson.serialize(value) as EncodedValue;
    return out.meta === undefined ? { json: out.json } : { json: out.json, meta: out.meta };
  } catch (err) {
    throw new NotSerializableError(`${what} cannot be encoded: ${errorText(err)}`, err);
  }
}

/** Encodes a value to JSON text (superjson document). */
export function encodeValueText(value: unknown, what = 'value'): string {
  return JSON.stringify(encodeValue(value, what));
}

/** Decodes a superjson document; throws {@link DecodeError}. */
export function decodeValue(doc: EncodedValue): unknown {
  try {
    if (doc.meta === undefined) return doc.json;
    return superjson.deserialize(doc as Parameters<typeof superjson.deserialize>[0]);
  } catch (err) {
    throw new DecodeError(`cannot decode value: ${(err as Error).message}`, err);
  }
}

/** Decodes JSON text of a superjson document. */
export function decodeValueText(text: string): unknown {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new DecodeError('stored value is not JSON', err);
  }
  if (!isObject(doc) || !('json' in doc)) throw new DecodeError('stored value is not a superjson document');
  return decodeValue(doc as unknown as EncodedValue);
}

/** Prototype tags of the objects the codec carries faithfully (besides Date, RegExp, URL, Error). */
const CARRIED_TAGS: ReadonlySet<string> = new Set(['Object', 'Array', 'Map', 'Set', 'Arguments']);

function assertSerializable(value: unknown, path: string, seen: Set<object>, depth: number): void {
  switch (typeof value) {
    case 'function':
      throw new NotSerializableError(`${shortPath(path)} is a function, which cannot be sent`);
    case 'symbol':
      throw new NotSerializableError(`${shortPath(path)} is a symbol, which cannot be sent`);
    case 'number':
    case 'string':
    case 'boolean':
    case 'bigint':
    case 'undefined':
      return;
    default:
      break;
  }
  if (value === null) return;
  const obj = value as object;
  if (seen.has(obj)) throw new NotSerializableError(`${shortPath(path)} contains a circular reference`);
  if (obj instanceof Date || obj instanceof RegExp || obj instanceof URL || obj instanceof Error) return;
  if (ArrayBuffer.isView(obj) || obj instanceof ArrayBuffer || isSharedArrayBuffer(obj)) {
    throw new NotSerializableError(`${shortPath(path)} is a binary buffer; encode it (e.g. base64) before sending`);
  }
  // Promise, WeakMap, WeakSet, WeakRef, boxed primitives, generators, Intl objects...: superjson
  // would carry them as `{}`. Class instances (tag "Object") travel as their own enumerable fields.
  const tag = Object.prototype.toString.call(obj).slice(8, -1);
  if (!CARRIED_TAGS.has(tag)) {
    throw new NotSerializableError(`${shortPath(path)} is a ${tag}, which cannot be sent (it would arrive as {})`);
  }
  if (depth >= MAX_VALUE_DEPTH) {
    throw new NotSerializableError(`${shortPath(path)} is nested deeper than ${MAX_VALUE_DEPTH} levels`);
  }
  seen.add(obj);
  const next = depth + 1;
  if (obj instanceof Map) {
    for (const [k, v] of obj) {
      assertSerializable(k, `${path} map key`, seen, next);
      assertSerializable(v, `${path}.get(${String(k)})`, seen, next);
    }
  } else if (obj instanceof Set) {
    for (const v of obj) assertSerializable(v, `${path} set item`, seen, next);
  } else if (Array.isArray(obj)) {
    for (let i = 0; i < obj.length; i++) assertSerializable(readField(obj, i, `${path}[${i}]`), `${path}[${i}]`, seen, next);
  } else {
    // Class instances travel as their own enumerable fields; their methods are not sent.
    for (const k of Object.keys(obj)) assertSerializable(readField(obj, k, `${path}.${k}`), `${path}.${k}`, seen, next);
  }
  seen.delete(obj);
}

/** Reads `obj[key]`; a throwing getter becomes a {@link NotSerializableError} naming the path. */
function readField(obj: object, key: string | number, path: string): unknown {
  try {
    return (obj as Record<string | number, unknown>)[key];
  } catch (err) {
    throw new NotSerializableError(`${shortPath(path)} cannot be read: ${errorText(err)}`, err);
  }
}

function isSharedArrayBuffer(obj: object): boolean {
  return typeof SharedArrayBuffer === 'function' && obj instanceof SharedArrayBuffer;
}

/** A path for a message: at most {@link MAX_PATH_CHARS} characters, cut in the middle with `…`. */
function shortPath(path: string): string {
  if (path.length <= MAX_PATH_CHARS) return path;
  const half = Math.floor(MAX_PATH_CHARS / 2);
  return `${path.slice(0, half)}…${path.slice(-half)}`;
}

function errorText(err: unknown): string {
  return clip(err instanceof Error ? err.message : String(err));
}

/** Longest quoted text a decode reason or error message carries. */
const MAX_QUOTED_CHARS = 200;

/**
 * `text` cut to {@link MAX_QUOTED_CHARS} characters with a marker telling how long it was, so that a
 * huge field never ends up whole in a reason, a log line or a stored state.
 */
export function clip(text: string, max = MAX_QUOTED_CHARS): string {
  return text.length <= max ? text : `${text.slice(0, max)}…[${text.length - max} more characters]`;
}

/** A JSON-quoted, {@link clip}ped rendering of a field value for decode reasons. */
function quote(v: unknown): string {
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = Object.prototype.toString.call(v);
  }
  return clip(s);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Fields every wire v1 reader (this and earlier releases) takes as `null` when absent. */
const NULL_WHEN_ABSENT: ReadonlySet<string> = new Set(['runAt', 'expireAt', 'timeoutMs', 'firstUnknownAt']);

/** Serialises a message to its wire text, without the fields at their absent value (those null; `retriesUsed` 0). */
export function encodeMessage(msg: TaskMessage): string {
  const out: Record<string, unknown> = {};
  for (const k in msg) {
    const v = (msg as unknown as Record<string, unknown>)[k];
    if (v === null && NULL_WHEN_ABSENT.has(k)) continue;
    if (k === 'retriesUsed' && v === 0) continue;
    out[k] = v;
  }
  return JSON.stringify(out);
}

/** Fails a message decode with `why`, carrying the ids read so far. */
function fail(why: string, partial: PartialIds): never {
  throw new MessageDecodeError(why, partial);
}

/** Takes a non-empty id field `k` of at most `max` characters into `partial`; returns the reason when it is longer. */
function takeId(raw: Record<string, unknown>, k: 'id' | 'group' | 'name', max: number, partial: PartialIds): string | undefined {
  const v = raw[k];
  if (typeof v !== 'string' || v.length === 0) return undefined;
  if (v.length > max) return `message ${k} is longer than ${max} characters (${v.length}): ${quote(v)}`;
  partial[k] = v;
  return undefined;
}

/** A number field of a message: null when absent (or null); anything but a finite number fails the decode. */
function numField(raw: Record<string, unknown>, k: string, partial: PartialIds): number | null {
  const v = raw[k];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'number' || !Number.isFinite(v)) return fail(`message field ${k} is not a number`, partial);
  return v;
}

/**
 * Parses and validates a message body. Throws {@link DecodeError} with a precise reason; `partial`
 * on the error carries the id/group/name when they could be read, so the failure can be recorded.
 */
export function decodeMessage(body: string): TaskMessage {
  let raw: unknown;
  try {
    raw = JSON.parse(body);
  } catch (err) {
    throw new MessageDecodeError('message is not valid JSON', {}, err);
  }
  if (!isObject(raw)) throw new MessageDecodeError('message is not a JSON object', {});
  const partial: PartialIds = {};
  const longId = takeId(raw, 'id', MAX_WIRE_ID_CHARS, partial);
  const longGroup = takeId(raw, 'group', 128, partial);
  const longName = takeId(raw, 'name', 128, partial);
  if (longId !== undefined || longGroup !== undefined || longName !== undefined) {
    fail([longId, longGroup, longName].filter((r) => r !== undefined).join('; '), partial);
  }
  if (raw.v !== WIRE_VERSION) fail(`unsupported wire version ${quote(raw.v)} (this worker reads ${WIRE_VERSION})`, partial);
  if (partial.id === undefined) fail('message has no id', partial);
  if (partial.group === undefined) fail('message has no group', partial);
  if (partial.name === undefined) fail('message has no name', partial);
  if (!isObject(raw.args) || !('json' in raw.args)) fail('message args are not a superjson document', partial);
  const args = raw.args as unknown as EncodedValue;
  if (!Array.isArray(args.json)) fail('message args are not an array', partial);
  let backoff: Backoff = { type: 'fixed', delayMs: 0 };
  if (raw.backoff !== undefined && raw.backoff !== null) {
    const b = raw.backoff;
    if (!isObject(b) || (b.type !== 'fixed' && b.type !== 'exponential') || typeof b.delayMs !== 'number') {
      fail('message backoff is malformed', partial);
    } else {
      backoff = { type: b.type, delayMs: b.delayMs };
      if (typeof b.maxDelayMs === 'number') backoff.maxDelayMs = b.maxDelayMs;
      if (typeof b.jitter === 'number') backoff.jitter = b.jitter;
    }
  }
  const msg: TaskMessage = {
    v: 1,
    id: partial.id as string,
    group: partial.group as string,
    name: partial.name as string,
    args,
    retriesLeft: numField(raw, 'retriesLeft', partial) ?? 0,
    retriesUsed: numField(raw, 'retriesUsed', partial) ?? 0,
    backoff,
    sentAt: numField(raw, 'sentAt', partial) ?? 0,
    runAt: numField(raw, 'runAt', partial),
    expireAt: numField(raw, 'expireAt', partial),
    timeoutMs: numField(raw, 'timeoutMs', partial),
    firstUnknownAt: numField(raw, 'firstUnknownAt', partial),
  };
  if (isObject(raw.flow)) msg.flow = raw.flow as FlowMessageInfo;
  if (raw.trace !== undefined) {
    const trace = readTrace(raw.trace);
    if (trace !== undefined) msg.trace = trace;
  }
  // Optional flow-control fields: kept when well formed (the broker routes by its own copy).
  if (typeof raw.priority === 'number' && Number.isInteger(raw.priority) && raw.priority >= 0 && raw.priority <= 9) msg.priority = raw.priority;
  if (typeof raw.key === 'string' && raw.key.length > 0 && raw.key.length <= 200) msg.key = raw.key;
  return msg;
}

/** Identifiers that could be read from a message that failed to decode. */
export interface PartialIds {
  /** Task id, if readable. */
  id?: string;
  /** Group, if readable. */
  group?: string;
  /** Name, if readable. */
  name?: string;
}

/** A {@link DecodeError} for a message body, with whatever ids could be read. */
export class MessageDecodeError extends DecodeError {
  /** Ids read before decoding failed. */
  readonly partial: PartialIds;
  /** @param message why @param partial ids read @param cause underlying error */
  constructor(message: string, partial: PartialIds, cause?: unknown) {
    super(message, cause);
    this.partial = partial;
  }
}

/** Delay in ms before retry number `retriesUsed + 1`, per the backoff policy. */
export function backoffDelay(backoff: Backoff, retriesUsed: number, random: () => number = Math.random): number {
  let delay = backoff.type === 'fixed' ? backoff.delayMs : backoff.delayMs * 2 ** Math.min(retriesUsed, 30);
  if (backoff.maxDelayMs !== undefined) delay = Math.min(delay, backoff.maxDelayMs);
  const jitter = Math.min(Math.max(backoff.jitter ?? 0, 0), 1);
  if (jitter > 0) delay = delay * (1 - jitter * random());
  return Math.max(0, Math.round(delay));
}
