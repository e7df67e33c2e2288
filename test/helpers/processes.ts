/** Spawning worker processes for end-to-end tests. */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const fixture = fileURLToPath(new URL('../fixtures/worker.ts', import.meta.url));

/** A running worker process. */
export interface WorkerProcess {
  child: ChildProcess;
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string>;
  output(): string;
}

/** Starts `test/fixtures/worker.ts` (or another fixture) with the given environment and waits for "ready". */
export async function startWorker(env: Record<string, string>, script: string = fixture): Promise<WorkerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker did not start:\n${out}`)), 30_000);
    const check = (): void => {
      if (out.includes('ready\n')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on('data', check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`worker exited (${code}) before it was ready:\n${out}`));
    });
  });
  return { child, exited, output: () => out };
}

/** Kills every given worker with SIGKILL and waits for their exit. */
export async function killAll(workers: WorkerProcess[]): Promise<void> {
  for (const w of workers) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
  await Promise.all(workers.map((w) => w.exited));
}

/**
 * Addresses (`127.0.0.1:port`) of the TCP connections that process `pid` holds to `port` on this
 * machine (read with `ss`), so a test can cut exactly one process's connections.
 */
export async function connectionsOf(pid: number, port: number): Promise<string[]> {
  const { execFile } = await import('node:child_process');
  const out = await new Promise<string>((resolve, reject) =>
    execFile('ss', ['-tnpH', `dport = :${port}`], (err, stdout) => (err ? reject(err) : resolve(stdout))),
  );
  return out
    .split('\n')
    .filter((line) => line.includes(`pid=${pid},`))
    .map((line) => line.trim().split(/\s+/)[3] as string)
    .filter(Boolean);
}

/**
 * Until `stop()` is called (or `maxKills` is reached), SIGKILLs a random live worker of `workers`
 * every 100–500 ms and starts a replacement with `spawn` (which must add it to `workers`). Resolves
 * with the number of kills once stopped.
 */
export function killAtRandom(workers: WorkerProcess[], spawn: () => Promise<WorkerProcess>, maxKills: number): { stop(): Promise<number> } {
  let done = false;
  let kills = 0;
  const loop = (async () => {
    while (!done && kills < maxKills) {
      await new Promise((r) => setTimeout(r, 100 + Math.random() * 400));
      const live = workers.filter((w) => w.child.exitCode === null && w.child.signalCode === null);
      const victim = live[Math.floor(Math.random() * live.length)];
      if (!victim || done) continue;
      victim.child.kill('SIGKILL');
      kills++;
      await victim.exited;
      await spawn();
    }
  })();
  return {
    async stop() {
      done = true;
      await loop;
      return kills;
    },
  };
}
