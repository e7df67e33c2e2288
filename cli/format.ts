/** Output of the `tasuki` command: aligned tables, colours on a TTY only, durations, one-line errors. */
import { TasukiError } from '../src/errors.js';
import { maskUrl } from './connect.js';

/** Where a command writes, and whether it may colour. */
export interface Output {
  /** Writes a line (or lines) to stdout. */
  line(text?: string): void;
  /** Colours `text` when allowed. */
  paint(colour: Colour, text: string): string;
  /** Whether JSON was asked for. */
  json: boolean;
  /** Whether stdout is a terminal (live views redraw in place). */
  tty: boolean;
}

/** Colours used. */
export type Colour = 'red' | 'green' | 'yellow' | 'blue' | 'grey' | 'bold';

const CODES: Record<Colour, [number, number]> = { red: [31, 39], green: [32, 39], yellow: [33, 39], blue: [34, 39], grey: [90, 39], bold: [1, 22] };

/** An {@link Output} on the process's stdout. Colours only on a TTY, never with `NO_COLOR` or `--no-color`. */
export function stdoutOutput(json: boolean, colour: boolean): Output {
  const tty = process.stdout.isTTY === true;
  const useColour = colour && tty && process.env.NO_COLOR === undefined && !json;
  return {
    line: (text = '') => void process.stdout.write(text + '\n'),
    paint: (c, text) => (useColour ? `\x1b[${CODES[c][0]}m${text}\x1b[${CODES[c][1]}m` : text),
    json,
    tty,
  };
}

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g;

/** Aligns rows under a header (first row), two spaces apart; numbers right-aligned. */
export function table(rows: ReadonlyArray<ReadonlyArray<string>>, rightAligned: ReadonlySet<number> = new Set()): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.replace(ANSI, '').length)));
  return rows
    .map((row) =>
      row
        .map((cell, i) => {
          const pad = ' '.repeat((widths[i] ?? 0) - cell.replace(ANSI, '').length);
          if (i === row.length - 1 && !rightAligned.has(i)) return cell;
          return rightAligned.has(i) ? pad + cell : cell + pad;
        })
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses a duration: `500ms`, `30s`, `5m`, `1h`, `2d`, or a number of ms. Throws {@link TasukiError} otherwise. */
export function parseDuration(text: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (m === null) throw new UsageError(`${what} must be a duration such as 500ms, 30s, 5m, 1h or 2d, got ${JSON.stringify(text)}`);
  return Math.round(Number(m[1]) * (UNITS[m[2] ?? 'ms'] as number));
}

/** A short human duration: `850ms`, `12s`, `4m`, `3h`, `2d`. */
export function shortDuration(ms: number): string {
  const a = Math.abs(ms);
  if (a < 1000) return `${Math.round(a)}ms`;
  if (a < 60_000) return `${Math.round(a / 1000)}s`;
  if (a < 3_600_000) return `${Math.round(a / 60_000)}m`;
  if (a < 86_400_000) return `${Math.round(a / 3_600_000)}h`;
  return `${Math.round(a / 86_400_000)}d`;
}

/** `12s ago` / `in 4m` relative to now. */
export function ago(at: number | undefined, now = Date.now()): string {
  if (at === undefined) return '-';
  return at <= now ? `${shortDuration(now - at)} ago` : `in ${shortDuration(at - now)}`;
}

/** An ISO time with its relative form. */
export function when(at: number | undefined): string {
  return at === undefined ? '-' : `${new Date(at).toISOString()} (${ago(at)})`;
}

/** A usage error: exit code 2. */
export class UsageError extends Error {
  /** @param message what was wrong with the command line */
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** A command that ran but whose answer is a failure (task failed, not found…): exit code 1, message printed. */
export class CommandFailed extends Error {
  /** @param message what failed */
  constructor(message: string) {
    super(message);
    this.name = 'CommandFailed';
  }
}

/** One line for an error, without stack or credentials: `ERR_CODE: message`. */
export function errorLine(err: unknown): string {
  let text: string;
  if (err instanceof TasukiError) text = `${err.code}: ${err.message}`;
  else if (err instanceof Error) text = err.message;
  else text = String(err);
  return maskUrl(text.split('\n')[0] ?? '').slice(0, 2000);
}

/** Exit code of an error: 2 for usage errors and invalid options, else 1. */
export function exitCodeOf(err: unknown): number {
  if (err instanceof UsageError) return 2;
  if (err instanceof TasukiError && (err.code === 'ERR_INVALID_OPTION' || err.code === 'ERR_INVALID_NAME')) return 2;
  return 1;
}

/** Colour of a task status. */
export function statusColour(status: string): Colour {
  if (status === 'success') return 'green';
  if (status === 'failure' || status === 'expired' || status === 'aborted') return 'red';
  if (status === 'running') return 'blue';
  if (status === 'waiting-retry') return 'yellow';
  return 'grey';
}
