/**
 * Spawning the real `tasuki` command in tests (through tsx on the source: no build needed): one run
 * with its exit code and output, a worker started by `tasuki worker` (resolved once it says it
 * runs), and polling until a condition holds.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (the working directory of every spawned command). */
export const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** The tsx binary of this checkout. */
export const TSX = join(root, 'node_modules/.bin/tsx');
/** The CLI's entry point. */
export const CLI = join(root, 'cli/index.ts');

/** One finished run of the command. */
export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A `tasuki worker` process. */
export interface CliWorker {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
}

/** Runs `tasuki <args>` with `env` until it exits. */
export function runCli(args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(TSX, [CLI, ...args], { cwd: root, env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolveRun({ code, stdout, stderr }));
  });
}

/** Starts `tasuki <args>` (a `worker` command) with `env`; resolves once it prints "worker running". */
export function startCliWorker(args: string[], env: NodeJS.ProcessEnv): Promise<CliWorker> {
  const child = spawn(TSX, [CLI, ...args], { cwd: root, env });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  return new Promise((resolveStart, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker did not start: ${out}`)), 60_000);
    child.stdout?.on('data', () => {
      if (out.includes('worker running')) {
        clearTimeout(timer);
        resolveStart({ child, output: () => out, exited });
      }
    });
    child.on('close', () => reject(new Error(`worker exited: ${out}`)));
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `check` every 200 ms until it is true; throws after `ms`. */
export async function until(check: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(200);
  }
}
