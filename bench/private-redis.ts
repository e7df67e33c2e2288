/**
 * A private redis-server for the cost bench: started on a free loopback port with no persistence
 * and a data directory of its own, stopped by its PID. Nothing else talks to it, so its INFO
 * counters (commandstats, network bytes, memory) are one system's alone.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';

/** Thrown when no `redis-server` can be started here (the cost table is then skipped, not failed). */
export class NoRedisServerError extends Error {
  readonly code = 'ERR_NO_REDIS_SERVER';
}

/** A running private server. */
export interface PrivateRedis {
  readonly port: number;
  readonly pid: number;
  /** Kills the server (by its PID) and removes its data directory. */
  stop(): Promise<void>;
}

/** A port free on 127.0.0.1 right now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const address = s.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** Starts `redis-server` (on PATH) on a free port; resolves once it answers PING. */
export async function startPrivateRedis(): Promise<PrivateRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'tasuki-cost-redis-'));
  const child: ChildProcess = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no', '--loglevel', 'warning'],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const pid = child.pid;
  child.once('error', () => undefined);
  if (pid === undefined) throw new NoRedisServerError('redis-server could not be started (is it on PATH?)');
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) process.kill(pid, 'SIGKILL');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  const onExit = (): void => {
    if (child.exitCode === null && child.signalCode === null) process.kill(pid, 'SIGKILL');
  };
  process.once('exit', onExit);
  for (let attempt = 0; ; attempt++) {
    const probe = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    // A refused connection while the server starts is expected: it rejects connect(), not an event nobody hears.
    probe.on('error', () => undefined);
    try {
      await probe.connect();
      await probe.ping();
      probe.disconnect();
      break;
    } catch (err) {
      probe.disconnect();
      if (attempt >= 50 || child.exitCode !== null) {
        await stop();
        throw new Error(`private redis-server on port ${port} did not start: ${String(err)}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    port,
    pid,
    async stop() {
      process.off('exit', onExit);
      await stop();
    },
  };
}

/** The counters of one INFO read: commands by name (those run inside scripts included), bytes in/out, memory. */
export interface RedisCounters {
  commands: Map<string, number>;
  netInput: number;
  netOutput: number;
  usedMemory: number;
  /** Read events the server processed (about one per client socket write that reached it). */
  reads: number;
  /** Bytes of this INFO reply (counted in the next read's output bytes, and taken off there). */
  replyBytes: number;
  /** Microseconds spent in each command by name (commandstats `usec`; a script's includes its calls). */
  usec: Map<string, number>;
  /** Server CPU time (user + system) in microseconds. */
  cpuUsec: number;
}

/** Bytes of the INFO request itself (`*2 $4 info $10 everything`), taken off the input bytes. */
const INFO_REQUEST_BYTES = 34;

/** Reads the counters (the INFO call itself is left out of `commands`). */
export async function readCounters(redis: Redis): Promise<RedisCounters> {
  const text = await redis.info('everything');
  const commands = new Map<string, number>();
  let netInput = 0;
  let netOutput = 0;
  let usedMemory = 0;
  let reads = 0;
  let cpuUsec = 0;
  const usec = new Map<string, number>();
  for (const line of text.split('\r\n')) {
    const m = /^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/.exec(line);
    if (m) {
      if (m[1] !== 'info') {
        commands.set(m[1] as string, Number(m[2]));
        usec.set(m[1] as string, Number(m[3]));
      }
      continue;
    }
    const [k, v] = line.split(':');
    if (k === 'total_net_input_bytes') netInput = Number(v);
    else if (k === 'total_net_output_bytes') netOutput = Number(v);
    else if (k === 'used_memory') usedMemory = Number(v);
    else if (k === 'total_reads_processed') reads = Number(v);
    else if (k === 'used_cpu_user' || k === 'used_cpu_sys') cpuUsec += Math.round(Number(v) * 1e6);
  }
  return { commands, netInput, netOutput, usedMemory, reads, replyBytes: Buffer.byteLength(text) + 16, usec, cpuUsec };
}

/**
 * Difference of two counter reads: total commands, commands by name, bytes in and out, the
 * microseconds of script calls (EVAL/EVALSHA/FCALL, what runs inside them included) and the
 * server's CPU time.
 */
export function countersDelta(
  a: RedisCounters,
  b: RedisCounters,
): { commands: number; byName: Record<string, number>; netInput: number; netOutput: number; reads: number; scriptUsec: number; cpuUsec: number } {
  const byName: Record<string, number> = {};
  let commands = 0;
  let scriptUsec = 0;
  for (const name of ['eval', 'evalsha', 'eval_ro', 'evalsha_ro', 'fcall', 'fcall_ro']) scriptUsec += (b.usec.get(name) ?? 0) - (a.usec.get(name) ?? 0);
  for (const [name, calls] of b.commands) {
    const d = calls - (a.commands.get(name) ?? 0);
    if (d > 0) {
      byName[name] = d;
      commands += d;
    }
  }
  // The INFO request of `b` is one read event of its own.
  return {
    commands, byName, netInput: b.netInput - a.netInput - INFO_REQUEST_BYTES, netOutput: b.netOutput - a.netOutput - a.replyBytes, reads: b.reads - a.reads - 1,
    scriptUsec, cpuUsec: b.cpuUsec - a.cpuUsec,
  };
}
