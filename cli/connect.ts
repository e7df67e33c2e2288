/**
 * How the `tasuki` command finds its broker and backend: flags (`--redis`, `--amqp`, `--backend`,
 * `--prefix`), then the environment (`TASUKI_REDIS`, `TASUKI_AMQP`, `TASUKI_BACKEND`,
 * `TASUKI_PREFIX`), then a config module (`--config`, `TASUKI_CONFIG`, or `tasuki.config.js` /
 * `.mjs` / `.ts` in the working directory) exporting the app's own broker and backend. Drivers are
 * imported only for the schemes used (`--prefix` is the key/queue prefix, the Mongo collection
 * prefix, or the PostgreSQL schema).
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Backend } from '../src/backend.js';
import type { Broker } from '../src/broker.js';
import { InvalidOptionError, UnsupportedError } from '../src/errors.js';
import type { ServerOptions } from '../src/options.js';

/** Connection flags shared by every command. */
export interface ConnectionFlags {
  redis?: string;
  amqp?: string;
  backend?: string;
  prefix?: string;
  config?: string;
}

/** What a config module exports (as `default`, or as named exports): instances, or a function making them. */
export interface TasukiConfig {
  /** The broker. */
  broker: Broker;
  /** The backend. */
  backend: Backend;
  /** Further server options for `tasuki worker` (leases, watchdog, heartbeat…). */
  server?: Omit<ServerOptions, 'broker' | 'backend'>;
}

/** A resolved connection. */
export interface Connection extends TasukiConfig {
  /** Where it came from, for messages (never with credentials). */
  source: string;
}

/**
 * Durability warnings of the Redis modules: printed to stderr by `tasuki worker` (set
 * `TASUKI_QUIET=1` to drop them), not by the one-shot commands, whose output they would clutter.
 */
const quiet = {
  warn(message: string): void {
    if (process.env.TASUKI_CLI_WORKER === '1' && process.env.TASUKI_QUIET !== '1') process.stderr.write(`tasuki: warning: ${message}\n`);
  },
};

/** Config module names looked for in the working directory. */
const CONFIG_FILES = ['tasuki.config.js', 'tasuki.config.mjs', 'tasuki.config.ts'];

/** Whether a module path needs the TypeScript loader. */
export function isTypeScript(path: string): boolean {
  return /\.(c|m)?ts$/.test(path);
}

/**
 * Imports a module by path; a `.ts` one through tsx's register API (an optional peer dependency:
 * without it, a clear error says to install it or to build the module to JavaScript).
 */
export async function importModule(path: string): Promise<Record<string, unknown>> {
  const abs = resolve(path);
  if (!existsSync(abs)) throw new InvalidOptionError(`module not found: ${path}`);
  if (isTypeScript(abs)) {
    let api: { register(): unknown };
    try {
      api = (await import('tsx/esm/api')) as { register(): unknown };
    } catch {
      throw new UnsupportedError(`loading ${path} needs the TypeScript loader tsx (npm install --save-dev tsx), or give the compiled .js module`);
    }
    api.register();
  }
  return (await import(pathToFileURL(abs).href)) as Record<string, unknown>;
}

function schemeOf(url: string): string {
  const m = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url);
  if (m === null) throw new InvalidOptionError(`not a connection URL (scheme://…): ${maskUrl(url)}`);
  return (m[1] as string).toLowerCase();
}

/** A URL with any password replaced by `***`. */
export function maskUrl(text: string): string {
  return text.replace(/(\b[a-z][a-z0-9+.-]*:\/\/[^:/@\s]*:)[^@\s]*@/gi, '$1***@');
}

/** A backend for a URL: redis://, rediss://, mongodb://, mongodb+srv://, memcache://, postgres://. */
export async function backendFor(url: string, prefix: string | undefined): Promise<Backend> {
  const scheme = schemeOf(url);
  if (scheme === 'redis' || scheme === 'rediss') {
    const { RedisBackend } = await import('../backends/redis.js');
    return new RedisBackend({ connection: url, logger: quiet, ...(prefix === undefined ? {} : { prefix }) });
  }
  if (scheme === 'mongodb' || scheme === 'mongodb+srv') {
    const { MongoBackend } = await import('../backends/mongo.js');
    return new MongoBackend({ url, ...(prefix === undefined ? {} : { collection: `${prefix}_tasks` }) });
  }
  if (scheme === 'memcache' || scheme === 'memcached') {
    const { MemcacheBackend } = await import('../backends/memcache.js');
    const u = new URL(url);
    const opts: { servers: string; prefix?: string; username?: string; password?: string } = { servers: u.host };
    if (prefix !== undefined) opts.prefix = prefix;
    if (u.username !== '') opts.username = decodeURIComponent(u.username);
    if (u.password !== '') opts.password = decodeURIComponent(u.password);
    return new MemcacheBackend(opts);
  }
  if (scheme === 'postgres' || scheme === 'postgresql') {
    const { PostgresBackend } = await import('../backends/postgres.js');
    return new PostgresBackend({ connection: url, ...(prefix === undefined ? {} : { schema: prefix }) });
  }
  throw new InvalidOptionError(`unknown backend scheme ${scheme}:// (use redis://, mongodb://, memcache:// or postgres://)`);
}

/** A broker for a URL: redis://, rediss://, amqp://, amqps://, postgres://. */
export async function brokerFor(url: string, prefix: string | undefined): Promise<Broker> {
  const scheme = schemeOf(url);
  if (scheme === 'redis' || scheme === 'rediss') {
    const { RedisBroker } = await import('../brokers/redis.js');
    return new RedisBroker({ connection: url, logger: quiet, ...(prefix === undefined ? {} : { prefix }) });
  }
  if (scheme === 'amqp' || scheme === 'amqps') {
    const { RabbitMQBroker } = await import('../brokers/rabbitmq.js');
    return new RabbitMQBroker({ url, ...(prefix === undefined ? {} : { prefix }) });
  }
  if (scheme === 'postgres' || scheme === 'postgresql') {
    const { PostgresBroker } = await import('../brokers/postgres.js');
    return new PostgresBroker({ connection: url, ...(prefix === undefined ? {} : { schema: prefix }) });
  }
  throw new InvalidOptionError(`unknown broker scheme ${scheme}:// (use redis://, amqp:// or postgres://)`);
}

function isConfig(v: unknown): v is TasukiConfig {
  return typeof v === 'object' && v !== null && typeof (v as TasukiConfig).broker?.fetch === 'function' && typeof (v as TasukiConfig).backend?.write === 'function';
}

async function fromConfig(path: string): Promise<Connection> {
  const mod = await importModule(path);
  let value: unknown = mod.default ?? mod;
  if (typeof value === 'function') value = await (value as () => unknown)();
  if (!isConfig(value)) throw new InvalidOptionError(`config module ${path} must export { broker, backend } (or a function returning them)`);
  return { ...value, source: path };
}

/** Resolves the connection of a command (see the module comment). */
export async function connect(flags: ConnectionFlags, env: NodeJS.ProcessEnv = process.env): Promise<Connection> {
  const redis = flags.redis ?? env.TASUKI_REDIS;
  const amqp = flags.amqp ?? env.TASUKI_AMQP;
  const backendUrl = flags.backend ?? env.TASUKI_BACKEND;
  const prefix = flags.prefix ?? env.TASUKI_PREFIX;
  if (redis !== undefined || amqp !== undefined || backendUrl !== undefined) {
    const brokerUrl = amqp ?? redis;
    const storeUrl = backendUrl ?? redis;
    if (brokerUrl === undefined) throw new InvalidOptionError('a broker is needed: give --redis URL or --amqp URL');
    if (storeUrl === undefined) throw new InvalidOptionError('a backend is needed with --amqp: give --backend URL (or --redis URL)');
    const broker = await brokerFor(brokerUrl, prefix);
    const backend = await backendFor(storeUrl, prefix);
    return { broker, backend, source: `${maskUrl(brokerUrl)} + ${maskUrl(storeUrl)}` };
  }
  const config = flags.config ?? env.TASUKI_CONFIG ?? CONFIG_FILES.find((f) => existsSync(resolve(f)));
  if (config !== undefined) return fromConfig(config);
  throw new InvalidOptionError('no connection: give --redis URL (or --amqp URL with --backend URL), set TASUKI_REDIS, or add a tasuki.config.js exporting { broker, backend }');
}
