/**
 * `tasuki dashboard`: serves the web dashboard (`tasuki/dashboard`) on the CLI's connection
 * (flags, environment or config module). A credential is required: `--token` (or
 * `TASUKI_DASHBOARD_TOKEN`), `--basic-auth user:password` (or `TASUKI_DASHBOARD_BASIC`), or the
 * config module's `dashboard: { auth }`; `--no-auth` is refused unless the address is loopback.
 * `--trust-proxy [addresses]` (or the config module's `dashboard: { trustProxy }`) believes a
 * reverse proxy's `X-Forwarded-*` headers.
 * Actions are audited on stdout; SIGINT / SIGTERM stop it.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Command } from 'commander';
import { Client } from '../src/client.js';
import { consoleLogger, silentLogger } from '../src/logger.js';
import { dashboard, isLoopback, type DashboardAuth, type TrustProxy } from '../dashboard/index.js';
import { connect, type Connection, type ConnectionFlags } from './connect.js';
import { UsageError } from './format.js';

/** Flags of `tasuki dashboard`. */
export interface DashboardFlags {
  port: string;
  host: string;
  token?: string;
  basicAuth?: string;
  /** False with `--no-auth`. */
  auth: boolean;
  readOnly?: boolean;
  /** `--trust-proxy` alone: true; with a value: the comma-separated proxy addresses / CIDR blocks. */
  trustProxy?: boolean | string;
}

/** What a config module may add for the dashboard. */
interface DashboardConfig {
  auth?: DashboardAuth;
  readOnly?: boolean;
  trustProxy?: TrustProxy;
}

/** The `trustProxy` option from `--trust-proxy` (first) or the config module; undefined: off. */
export function trustProxyFrom(f: DashboardFlags, config: DashboardConfig | undefined): TrustProxy | undefined {
  if (f.trustProxy === undefined || f.trustProxy === false) return config?.trustProxy;
  if (f.trustProxy === true) return true;
  const list = f.trustProxy.split(',').map((a) => a.trim()).filter((a) => a !== '');
  if (list.length === 0) throw new UsageError('--trust-proxy takes nothing (one proxy in front) or a comma-separated list of proxy addresses / CIDR blocks');
  return list;
}

/** The credential from flags and environment (undefined: none given there). */
export function authFromFlags(f: DashboardFlags, env: NodeJS.ProcessEnv): DashboardAuth | undefined {
  const token = f.token ?? env.TASUKI_DASHBOARD_TOKEN;
  const basic = f.basicAuth ?? env.TASUKI_DASHBOARD_BASIC;
  if (!f.auth) {
    if (token !== undefined || basic !== undefined) throw new UsageError('--no-auth cannot be combined with a token or basic auth');
    if (!isLoopback(f.host)) throw new UsageError(`--no-auth is refused on ${f.host}: without a credential the dashboard may listen on a loopback address only (127.0.0.1, ::1, localhost)`);
    return { none: true };
  }
  if (token !== undefined && basic !== undefined) throw new UsageError('give a token or basic auth, not both');
  if (token !== undefined) return { token };
  if (basic !== undefined) {
    const colon = basic.indexOf(':');
    if (colon <= 0) throw new UsageError('--basic-auth takes user:password');
    return { basic: { username: basic.slice(0, colon), password: basic.slice(colon + 1) } };
  }
  return undefined;
}

/** The credential from flags, environment, then config module. */
export function authFrom(f: DashboardFlags, env: NodeJS.ProcessEnv, config: DashboardConfig | undefined): DashboardAuth {
  const auth = authFromFlags(f, env) ?? config?.auth;
  if (auth !== undefined) return auth;
  throw new UsageError('the dashboard needs a credential: --token <token> (or TASUKI_DASHBOARD_TOKEN), --basic-auth user:password (or TASUKI_DASHBOARD_BASIC), or dashboard: { auth } in the config module; --no-auth only on a loopback address');
}

/** Serves the dashboard until SIGINT / SIGTERM. */
export async function runDashboard(g: ConnectionFlags, f: DashboardFlags): Promise<void> {
  const port = Number(f.port);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new UsageError('--port must be a port number (0: any free one)');
  const env = process.env;
  // What the flags say is checked before anything connects.
  authFromFlags(f, env);
  const conn: Connection & { dashboard?: DashboardConfig } = await connect(g);
  const config = conn.dashboard;
  const client = new Client({ broker: conn.broker, backend: conn.backend, logger: silentLogger });
  const logger = consoleLogger('info');
  try {
    const trustProxy = trustProxyFrom(f, config);
    const handler = dashboard({ client, auth: authFrom(f, env, config), readOnly: f.readOnly === true || config?.readOnly === true, logger, ...(trustProxy === undefined ? {} : { trustProxy }) });
    const server = createServer((req, res) => handler(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, f.host, () => resolve());
    });
    const addr = server.address() as AddressInfo;
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    process.stdout.write(`dashboard on http://${host}:${addr.port}/ (${conn.source}); Ctrl-C to stop\n`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  } finally {
    await client.close().catch(() => undefined);
  }
}

/** The `dashboard` command, for `program.addCommand`. */
export function dashboardCommand(): Command {
  return new Command('dashboard')
    .description('serve the web dashboard (needs --token, --basic-auth or, on loopback only, --no-auth)')
    .option('-p, --port <port>', 'port (0: any free one)', '8080')
    .option('--host <address>', 'address to listen on', '127.0.0.1')
    .option('--token <token>', 'access token (env TASUKI_DASHBOARD_TOKEN; at least 16 characters)')
    .option('--basic-auth <user:password>', 'HTTP basic auth instead of a token (env TASUKI_DASHBOARD_BASIC)')
    .option('--no-auth', 'no credential (refused unless --host is a loopback address)')
    .option('--read-only', 'hide and refuse every action')
    .option('--trust-proxy [addresses]', "behind a reverse proxy: believe its X-Forwarded-For/-Proto/-Host (alone: the one proxy in front; or the proxies' addresses / CIDR blocks, comma-separated)")
    .action((f: DashboardFlags, cmd: Command) => runDashboard(cmd.optsWithGlobals<ConnectionFlags>(), f));
}
