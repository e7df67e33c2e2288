/**
 * The run-time key check of `./helpers/redis-key-check.ts` (issue 17: every script declares every key
 * it touches): it lets declared keys through, and fails a script that touches an undeclared key or
 * runs a command whose key positions it does not know. With `TASUKI_REDIS_KEY_CHECK=1` the broker's
 * own scripts carry it (the suites of priorities, fairness, limits and shards run that way).
 */
import { afterAll, expect, it } from 'vitest';
import { keyCheckPrologue } from './helpers/redis-key-check.js';
import { redisNamespace } from './helpers/redis.js';

const ns = redisNamespace('key-check');

afterAll(async () => {
  await ns.sweep();
  expect(await ns.keys()).toEqual([]);
  await ns.quit();
});

const run = (lua: string, keys: string[], ...args: string[]): Promise<unknown> => ns.admin.eval(keyCheckPrologue() + lua, keys.length, ...keys, ...args);

it('declared keys pass; an undeclared key, a missing key argument or an unlisted command fails the script', async () => {
  const a = `${ns.prefix}:{t}:a`;
  const b = `${ns.prefix}:{t}:b`;
  expect(await run(`redis.call('SET', KEYS[1], 'x') redis.call('DEL', KEYS[1], KEYS[2]) return redis.call('TIME')[1] ~= nil`, [a, b])).toBe(1);
  await expect(run(`return redis.call('GET', KEYS[1] .. 'x')`, [a])).rejects.toThrow(/touches undeclared key .*:a(x)/);
  await expect(run(`return redis.pcall('DEL', KEYS[1], ARGV[1])`, [a], b)).rejects.toThrow(/DEL touches undeclared key/);
  await expect(run(`return redis.call('GET')`, [a])).rejects.toThrow(/without its key argument/);
  await expect(run(`return redis.call('OBJECT', 'ENCODING', KEYS[1])`, [a])).rejects.toThrow(/OBJECT has no listed key positions/);
});
