/**
 * A private local Redis Cluster for tests: 3 masters + 3 replicas, each a `redis-server
 * --cluster-enabled yes` on its own loopback port and data directory, joined with `redis-cli
 * --cluster create … --cluster-replicas 1`. Nodes are killed by PID only (never by name); the
 * shared server on 6379 is never touched. `scripts/redis-cluster.sh` does the same by hand.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, Redis } from 'ioredis';

/** Whether `redis-server` and `redis-cli` are on the PATH (cluster tests skip otherwise). */
export const haveRedisCluster: boolean =
  spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0 && spawnSync('redis-cli', ['--version'], { stdio: 'ignore' }).status === 0;

/** One node of a {@link PrivateCluster}. */
export interface ClusterNodeProcess {
  readonly port: number;
  readonly dir: string;
  pid(): number;
  alive(): boolean;
}

/** A running private Redis Cluster. */
export interface PrivateCluster {
  /** Startup nodes for ioredis `Cluster` (every node). */
  readonly nodes: ReadonlyArray<{ host: string; port: number }>;
  /** Every node process. */
  readonly processes: ReadonlyArray<ClusterNodeProcess>;
  /** The port of the master serving `key`'s slot now. */
  masterOf(key: string): Promise<number>;
  /** SIGKILLs the node on `port` (by PID) and waits for its exit. */
  kill(port: number): Promise<void>;
  /** Starts the node on `port` again (same data directory and nodes.conf: it rejoins). */
  restart(port: number): Promise<void>;
  /** Resolves once every slot is served by a live master again (after a failover), within `ms`. */
  untilHealthy(ms?: number): Promise<void>;
  /** Resolves once the node on `port` is a replica whose link to its master is up, within `ms`. */
  untilReplicaSynced(port: number, ms?: number): Promise<void>;
  /** Every key matching `pattern` on every master. */
  keys(pattern: string): Promise<string[]>;
  /** Deletes every key matching `pattern`. */
  sweep(pattern: string): Promise<void>;
  /** An admin ioredis Cluster client (closed by {@link stop}). */
  admin(): Cluster;
  /** Kills every node (by PID) and removes the data directories. */
  stop(): Promise<void>;
}

/** Options of {@link startRedisCluster}. */
export interface RedisClusterOptions {
  /** `cluster-node-timeout` in ms (how soon a dead master is failed over). Default 15000 (the Redis default: no false failover on a loaded machine). */
  nodeTimeoutMs?: number;
  /** Extra `redis-server` arguments for every node. */
  args?: string[];
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** `n` ports p with p and p + 10000 (the cluster bus) free, in 20000–29999. */
async function clusterPorts(n: number): Promise<number[]> {
  const out: number[] = [];
  let start = 20000 + Math.floor(Math.random() * 9000);
  while (out.length < n) {
    const p = start++;
    if (p > 29999) start = 20000;
    if (!out.includes(p) && (await portFree(p)) && (await portFree(p + 10000))) out.push(p);
  }
  return out;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

async function untilPing(port: number, exited: () => boolean): Promise<void> {
  const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => 50, maxRetriesPerRequest: null });
  probe.on('error', () => undefined);
  try {
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (exited()) throw new Error(`redis cluster node on port ${port} exited before it answered`);
      if (Date.now() > deadline) throw new Error(`redis cluster node on port ${port} did not answer within 20 s`);
      const ok = await Promise.race([probe.ping().then(() => true, () => false), sleep(500).then(() => false)]);
      if (ok) return;
    }
  } finally {
    probe.disconnect();
  }
}

/** `CLUSTER INFO` of one node as a map (empty when it does not answer). */
async function clusterInfo(port: number): Promise<Map<string, string>> {
  const c = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, connectTimeout: 1000 });
  c.on('error', () => undefined);
  try {
    const text = String(await c.cluster('INFO'));
    return new Map(text.split(/\r?\n/).filter((l) => l.includes(':')).map((l) => l.split(':', 2) as [string, string]));
  } catch {
    return new Map();
  } finally {
    c.disconnect();
  }
}

/** Starts 6 nodes, creates the cluster (3 masters, 1 replica each) and waits until every node says `cluster_state:ok`. */
export async function startRedisCluster(options: RedisClusterOptions = {}): Promise<PrivateCluster> {
  const ports = await clusterPorts(6);
  const timeout = options.nodeTimeoutMs ?? 15_000;
  const children = new Map<number, ChildProcess>();
  const dirs = new Map<number, string>();
  const launch = async (port: number): Promise<void> => {
    const dir = dirs.get(port) as string;
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-config-file', join(dir, 'nodes.conf'),
      '--cluster-node-timeout', String(timeout), '--save', '', '--appendonly', 'yes', '--dir', dir, ...(options.args ?? [])];
    const child = spawn('redis-server', args, { stdio: 'ignore' });
    children.set(port, child);
    await untilPing(port, () => child.exitCode !== null || child.signalCode !== null);
  };
  const alive = (port: number): boolean => {
    const c = children.get(port);
    return c !== undefined && c.exitCode === null && c.signalCode === null;
  };
  const kill = async (port: number): Promise<void> => {
    const c = children.get(port);
    if (c === undefined || !alive(port)) return;
    const gone = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    process.kill(c.pid as number, 'SIGKILL');
    await gone;
  };
  const admins: Cluster[] = [];
  // Safety net: a test process that ends without stop() (a crash) still kills its nodes, by PID.
  const onExit = (): void => {
    for (const port of ports) if (alive(port)) process.kill(children.get(port)?.pid as number, 'SIGKILL');
    for (const d of dirs.values()) rmSync(d, { recursive: true, force: true });
  };
  process.once('exit', onExit);
  const stop = async (): Promise<void> => {
    process.off('exit', onExit);
    for (const a of admins.splice(0)) a.disconnect();
    await Promise.all(ports.map(kill));
    for (const d of dirs.values()) rmSync(d, { recursive: true, force: true });
  };
  try {
    for (const p of ports) dirs.set(p, mkdtempSync(join(tmpdir(), `tasuki-cluster-${p}-`)));
    await Promise.all(ports.map(launch));
    const created = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const cli = spawn('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '1', '--cluster-yes'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      cli.stdout?.on('data', (b: Buffer) => (out += b.toString()));
      cli.stderr?.on('data', (b: Buffer) => (out += b.toString()));
      cli.on('exit', (code) => resolve({ code, out }));
    });
    if (created.code !== 0) throw new Error(`redis-cli --cluster create failed:\n${created.out}`);
    await untilOk(ports, 30_000);
  } catch (err) {
    await stop();
    throw err;
  }
  const admin = (): Cluster => {
    const a = new Cluster(ports.map((port) => ({ host: '127.0.0.1', port })), { clusterRetryStrategy: () => 100 });
    a.on('error', () => undefined);
    admins.push(a);
    return a;
  };
  let shared: Cluster | undefined;
  const sharedAdmin = (): Cluster => (shared ??= admin());
  const cluster: PrivateCluster = {
    nodes: ports.map((port) => ({ host: '127.0.0.1', port })),
    processes: ports.map((port) => ({ port, dir: dirs.get(port) as string, pid: () => children.get(port)?.pid as number, alive: () => alive(port) })),
    async masterOf(key: string): Promise<number> {
      const a = sharedAdmin();
      const slot = Number(await a.cluster('KEYSLOT', key));
      const raw = (await a.cluster('SLOTS')) as unknown as Array<[number, number, [string, number]]>;
      for (const [from, to, master] of raw) if (slot >= from && slot <= to) return Number(master[1]);
      throw new Error(`no master serves slot ${slot}`);
    },
    kill,
    restart: launch,
    untilHealthy: (ms = 30_000) => untilOk(ports.filter(alive), ms),
    async untilReplicaSynced(port: number, ms = 30_000): Promise<void> {
      const deadline = Date.now() + ms;
      for (;;) {
        const c = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
        c.on('error', () => undefined);
        const info = await c.info('replication').catch(() => '');
        c.disconnect();
        if (/role:slave/.test(info) && /master_link_status:up/.test(info) && !/master_sync_in_progress:1/.test(info)) return;
        if (Date.now() > deadline) throw new Error(`node ${port} is not a synced replica within ${ms} ms`);
        await sleep(200);
      }
    },
    async keys(pattern: string): Promise<string[]> {
      // Every live node (replicas hold copies): SCAN needs no slot, the set removes the duplicates.
      const found = new Set<string>();
      for (const port of ports) {
        if (!alive(port)) continue;
        const c = new Redis({ port, host: '127.0.0.1', lazyConnect: true });
        c.on('error', () => undefined);
        try {
          let cursor = '0';
          do {
            const [next, batch] = await c.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
            cursor = next;
            for (const k of batch) found.add(k);
          } while (cursor !== '0');
        } catch {
          // a node that just died or is loading: the others hold the keys
        } finally {
          c.disconnect();
        }
      }
      return [...found];
    },
    async sweep(pattern: string): Promise<void> {
      const found = await cluster.keys(pattern);
      const a = sharedAdmin();
      await Promise.all(found.map((k) => a.del(k)));
    },
    admin: sharedAdmin,
    stop,
  };
  // A replica that never synced cannot be promoted: wait until every replica has its master's data.
  await Promise.all(ports.map(async (port) => {
    const c = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    c.on('error', () => undefined);
    const info = await c.info('replication').catch(() => '');
    c.disconnect();
    if (/role:slave/.test(info)) await cluster.untilReplicaSynced(port);
  })).catch(async (err: unknown) => {
    await stop();
    throw err;
  });
  return cluster;
}

/** Waits until every node in `ports` reports `cluster_state:ok` with all 16384 slots ok. */
async function untilOk(ports: number[], ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const infos = await Promise.all(ports.map(clusterInfo));
    if (infos.every((i) => i.get('cluster_state') === 'ok' && i.get('cluster_slots_ok') === '16384')) return;
    if (Date.now() > deadline) throw new Error(`redis cluster not ok within ${ms} ms: ${infos.map((i) => i.get('cluster_state')).join(',')}`);
    await sleep(200);
  }
}
