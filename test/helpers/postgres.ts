/**
 * Test helpers for PostgreSQL (127.0.0.1:5432, trust auth, database `test`): a unique schema per
 * test or file, and an admin pool that drops it afterwards.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';

/** Connection string of the shared test server (override with TASUKI_PG_URL). */
export const PG_URL = process.env.TASUKI_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/**
 * Tag of this test file's schemas (modules load once per file): checks for schemas left behind
 * look at their own file's only, never at those of another run on the same server.
 */
const FILE_TAG = randomUUID().replace(/-/g, '').slice(0, 6);

/** A fresh schema name `tasuki_<label>_<file tag><random>` (lower case, within the 47-character limit). */
export function schemaName(label = 't'): string {
  return `tasuki_${label}_${FILE_TAG}${randomUUID().replace(/-/g, '').slice(0, 10)}`;
}

/** Schemas of this test file with `label` still present (for an `afterAll` check). */
export async function schemasLeft(pool: pg.Pool, label: string): Promise<string[]> {
  const res = await pool.query<{ nspname: string }>('SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1)', [`tasuki_${label}_${FILE_TAG}`]);
  return res.rows.map((r) => r.nspname);
}

/** An admin pool for assertions and clean-up. */
export function adminPool(): pg.Pool {
  const pool = new pg.Pool({ connectionString: PG_URL, max: 4, application_name: 'tasuki-test-admin' });
  pool.on('error', () => undefined);
  return pool;
}

/** Drops a schema and everything in it. */
export async function dropSchema(pool: pg.Pool, schema: string): Promise<void> {
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
}

/** True when the schema exists. */
export async function schemaExists(pool: pg.Pool, schema: string): Promise<boolean> {
  const res = await pool.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
  return res.rowCount === 1;
}

/** A private PostgreSQL server of one test (own data directory and port), started and stopped by PID. */
export interface PrivatePostgres {
  /** Connection string (127.0.0.1, trust auth, database `postgres`). */
  readonly url: string;
  readonly port: number;
  /** PID of the running postmaster (undefined while stopped). */
  pid(): number | undefined;
  /** Starts the server (again) on the same port and data directory. */
  start(): Promise<void>;
  /** Stops it by PID: SIGQUIT (immediate shutdown, like a crash) by default; waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Stops it if running and removes its directory. */
  destroy(): Promise<void>;
}

/** Runs a command and resolves with its output; rejects with the output on failure. */
async function sh(cmd: string, args: string[]): Promise<string> {
  const { execFile } = await import('node:child_process');
  return new Promise((resolve, reject) =>
    execFile(cmd, args, { timeout: 120_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${cmd} ${args.join(' ')}: ${stderr || stdout || err.message}`)) : resolve(stdout))),
  );
}

/** A free TCP port on 127.0.0.1. */
async function freePort(): Promise<number> {
  const net = await import('node:net');
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * `initdb` (as the `postgres` user: initdb refuses root) into a fresh temporary directory and starts
 * the server on a free port with `pg_ctl`. Fsync is off (a test server; committed data still
 * survives a server crash, only not a machine crash).
 */
export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const { mkdtemp, rm, readFile, chown } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const bindir = (await sh('pg_config', ['--bindir'])).trim();
  const dir = await mkdtemp(join(tmpdir(), 'tasuki-pg-'));
  const data = join(dir, 'data');
  const asRoot = process.getuid?.() === 0;
  const ids = asRoot ? (await sh('id', ['-u', 'postgres'])).trim() : '';
  const gid = asRoot ? (await sh('id', ['-g', 'postgres'])).trim() : '';
  if (asRoot) await chown(dir, Number(ids), Number(gid));
  const as = (cmd: string, args: string[]): Promise<string> => (asRoot ? sh('runuser', ['-u', 'postgres', '--', join(bindir, cmd), ...args]) : sh(join(bindir, cmd), args));
  await as('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8']);
  const port = await freePort();
  let pid: number | undefined;
  const readPid = async (): Promise<number> => Number((await readFile(join(data, 'postmaster.pid'), 'utf8')).split('\n')[0]);
  const alive = (p: number): boolean => {
    try {
      process.kill(p, 0);
      return true;
    } catch {
      return false;
    }
  };
  const server: PrivatePostgres = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    pid: () => pid,
    async start() {
      await as('pg_ctl', ['-D', data, '-l', join(dir, 'log'), '-w', '-t', '60', '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60`, 'start']);
      pid = await readPid();
    },
    async stop(signal: NodeJS.Signals = 'SIGQUIT') {
      const p = pid;
      if (p === undefined) return;
      process.kill(p, signal);
      for (let i = 0; i < 600 && alive(p); i++) await new Promise((r) => setTimeout(r, 50));
      pid = undefined;
    },
    async destroy() {
      await server.stop('SIGQUIT').catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
  await server.start();
  return server;
}
