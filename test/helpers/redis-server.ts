/**
 * A private redis-server for tests that must stop, freeze or reconfigure a server: spawned on a free
 * loopback port with its own data directory, signalled and killed by its PID only, and removed
 * afterwards. The shared server on 6379 is never touched.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';

/** A running private redis-server. */
export interface PrivateRedis {
  /** Its TCP port on 127.0.0.1. */
  readonly port: number;
  /** Its data directory (append-only file, dumps). */
  readonly dir: string;
  /** PID of the current process. */
  pid(): number;
  /** Sends `signal` to the server process (by PID): `SIGSTOP` freezes it, `SIGCONT` resumes it. */
  signal(signal: NodeJS.Signals): void;
  /** SIGKILLs the server (by PID) and waits for its exit. */
  kill(): Promise<void>;
  /** Starts the server again on the same port, data directory and arguments (after {@link kill}). */
  restart(): Promise<void>;
  /** Kills the server (resuming it first if frozen) and deletes its data directory. */
  remove(): Promise<void>;
}

/** Options of {@link startPrivateRedis}. */
export interface PrivateRedisOptions {
  /** Extra `redis-server` arguments, e.g. `['--appendonly', 'yes']`. */
  args?: string[];
  /** Password the readiness probe authenticates with (for a server started with `--requirepass`). */
  password?: string;
}

/** A TCP port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Starts a private `redis-server` (no RDB snapshots unless `args` say otherwise); resolves once it answers PING. */
export async function startPrivateRedis(options: PrivateRedisOptions = {}): Promise<PrivateRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'tasuki-redis-'));
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--dir', dir, ...(options.args ?? [])];
  let child: ChildProcess;
  let exited: Promise<void>;
  const launch = async (): Promise<void> => {
    child = spawn('redis-server', args, { stdio: 'ignore' });
    exited = new Promise((resolve) => child.once('exit', () => resolve()));
    await untilAnswers(port, options.password, exited);
  };
  const alive = (): boolean => child.exitCode === null && child.signalCode === null;
  const kill = async (): Promise<void> => {
    if (alive()) child.kill('SIGKILL');
    await exited;
  };
  await launch();
  return {
    port,
    dir,
    pid: () => child.pid as number,
    signal: (signal) => {
      if (alive()) process.kill(child.pid as number, signal);
    },
    kill,
    restart: launch,
    async remove() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Resolves once the server on `port` answers PING; rejects if it exits first or takes over 20 s. */
async function untilAnswers(port: number, password: string | undefined, exited: Promise<void>): Promise<void> {
  const probe = new Redis({
    port,
    host: '127.0.0.1',
    ...(password === undefined ? {} : { password }),
    lazyConnect: true,
    retryStrategy: () => 50,
    maxRetriesPerRequest: null,
    connectionName: 'tasuki-test-probe',
  });
  probe.on('error', () => undefined);
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      probe.ping(),
      exited.then(() => Promise.reject(new Error(`redis-server on port ${port} exited before it answered`))),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`redis-server on port ${port} did not answer within 20 s`)), 20_000);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    probe.disconnect();
  }
}
