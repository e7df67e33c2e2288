/**
 * Pluggable logging. tasuki logs through a {@link Logger}; pass your own (pino, winston and console
 * all fit) or use {@link consoleLogger} / {@link silentLogger}.
 */

/** Structured fields attached to a log line. */
export type LogFields = Record<string, unknown>;

/** The logger interface tasuki writes to. */
export interface Logger {
  /** Verbose diagnostics (every task step). */
  debug(message: string, fields?: LogFields): void;
  /** Normal life-cycle events (worker started, shutdown). */
  info(message: string, fields?: LogFields): void;
  /** Something went wrong but was handled (reconnects, retries of writes, dead letters). */
  warn(message: string, fields?: LogFields): void;
  /** Something went wrong and needs attention. */
  error(message: string, fields?: LogFields): void;
}

/** Log levels in increasing severity. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

/** A logger that drops everything (the default in tests). */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};

/**
 * A readable console logger: `2026-01-01T00:00:00.000Z INFO  tasuki: message key=value`.
 * @param level lowest level printed (default `info`)
 */
export function consoleLogger(level: LogLevel = 'info'): Logger {
  const min = ORDER[level];
  const line = (lvl: Exclude<LogLevel, 'silent'>, message: string, fields?: LogFields): void => {
    if (ORDER[lvl] < min) return;
    const extra = fields
      ? Object.entries(fields)
          .map(([k, v]) => `${k}=${typeof v === 'string' ? v : safeJson(v)}`)
          .join(' ')
      : '';
    const text = `${new Date().toISOString()} ${lvl.toUpperCase().padEnd(5)} tasuki: ${message}${extra ? ' ' + extra : ''}`;
    if (lvl === 'error' || lvl === 'warn') console.error(text);
    else console.log(text);
  };
  return {
    debug: (m, f) => line('debug', m, f),
    info: (m, f) => line('info', m, f),
    warn: (m, f) => line('warn', m, f),
    error: (m, f) => line('error', m, f),
  };
}

function safeJson(v: unknown): string {
  if (v instanceof Error) return JSON.stringify(`${v.name}: ${v.message}`);
  try {
    return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x)) ?? String(v);
  } catch {
    return String(v);
  }
}
