/**
 * A private RabbitMQ node for fault tests that must crash the server: its own node name, AMQP and
 * distribution ports (loopback only), data and log directories under a temporary directory, an empty
 * plugins file (no management listener) and its own Erlang cookie. The shared node is never touched:
 * the node is killed by the PID of its Erlang VM, read from the node's own pid file.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const SBIN = '/usr/lib/rabbitmq/bin';

/** A private RabbitMQ node. */
export interface PrivateRabbit {
  /** Node name (`tasuki-test-<pid>-<id>@localhost`). */
  readonly node: string;
  /** AMQP URL of the node (guest/guest on 127.0.0.1). */
  readonly url: string;
  /** OS pid of the node's Erlang VM (beam.smp) of the current run. */
  pid(): number;
  /** SIGKILLs the Erlang VM and waits until it is gone. */
  crash(): Promise<void>;
  /** Starts the node again on the same data directory and waits until it accepts work. */
  start(): Promise<void>;
  /** Runs `rabbitmqctl -n <node> ...args` against this node; resolves with its output. */
  ctl(...args: string[]): Promise<string>;
  /** Stops the node (SIGKILL, it holds no data worth keeping) and deletes its directory. */
  destroy(): Promise<void>;
}

/** A free loopback port outside the ranges RabbitMQ's CLI tools and the shared node use. */
async function freePort(avoid: Set<number>): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => {
        const addr = srv.address();
        srv.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0));
      });
    });
    // 25672: the shared node's distribution port; 35672-35682: rabbitmqctl's own distribution ports.
    const reserved = port === 25672 || (port >= 35672 && port <= 35682);
    if (port > 0 && !reserved && !avoid.has(port)) return port;
  }
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(cmd, args, { env, timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) =>
      err ? reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${stdout}${stderr}`)) : resolve(stdout),
    ),
  );
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Options of {@link startPrivateRabbit}. */
export interface PrivateRabbitOptions {
  /** Erlang cookie (default: a fresh random one). Nodes that are to form a cluster share one. */
  cookie?: string;
  /** Extra `rabbitmq.conf` lines. */
  conf?: string;
}

/** Starts a private RabbitMQ node and waits until it runs. */
export async function startPrivateRabbit(options: PrivateRabbitOptions = {}): Promise<PrivateRabbit> {
  const dir = mkdtempSync(join(tmpdir(), 'tasuki-rabbit-'));
  const node = `tasuki-test-${process.pid}-${randomUUID().slice(0, 6)}@localhost`;
  const amqpPort = await freePort(new Set());
  const distPort = await freePort(new Set([amqpPort]));
  const pidFile = join(dir, 'node.pid');
  writeFileSync(join(dir, 'enabled_plugins'), '[].\n');
  writeFileSync(join(dir, 'rabbitmq.conf'), `# private tasuki test node\n${options.conf ?? ''}`);
  writeFileSync(join(dir, '.erlang.cookie'), options.cookie ?? randomUUID().replace(/-/g, '').toUpperCase());
  chmodSync(join(dir, '.erlang.cookie'), 0o400);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HOME: dir,
    RABBITMQ_NODENAME: node,
    RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
    RABBITMQ_NODE_PORT: String(amqpPort),
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: join(dir, 'log'),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'),
    RABBITMQ_CONFIG_FILE: join(dir, 'rabbitmq.conf'),
    RABBITMQ_CONF_ENV_FILE: join(dir, 'rabbitmq-env.conf'),
    RABBITMQ_PID_FILE: pidFile,
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: '-kernel inet_dist_use_interface {127,0,0,1}',
  };
  let child: ChildProcess | null = null;
  let vm = 0;

  const start = async (): Promise<void> => {
    rmSync(pidFile, { force: true });
    child = spawn(`${SBIN}/rabbitmq-server`, [], { env, stdio: 'ignore', detached: false });
    child.unref();
    // `wait` waits for the pid file, then for the rabbit application to run.
    await run(`${SBIN}/rabbitmqctl`, ['-n', node, 'wait', pidFile, '--timeout', '90'], env, 100_000);
    vm = Number(readFileSync(pidFile, 'utf8').trim());
    if (!Number.isInteger(vm) || vm <= 0) throw new Error(`no pid in ${pidFile}`);
  };

  const crash = async (): Promise<void> => {
    if (vm > 0 && alive(vm)) process.kill(vm, 'SIGKILL');
    const until = Date.now() + 30_000;
    while (vm > 0 && alive(vm) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    vm = 0;
    // Let epmd notice the node is gone before it starts again under the same name.
    await new Promise((r) => setTimeout(r, 500));
  };

  try {
    await start();
  } catch (err) {
    await crash();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    node,
    url: `amqp://guest:guest@127.0.0.1:${amqpPort}`,
    pid: () => vm,
    crash,
    start,
    ctl: (...args: string[]) => run(`${SBIN}/rabbitmqctl`, ['-n', node, ...args], env, 120_000),
    async destroy() {
      await crash();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
