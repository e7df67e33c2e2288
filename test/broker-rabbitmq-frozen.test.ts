/**
 * A frozen RabbitMQ worker (SIGSTOP: as a long GC pause or a blocked event loop) cannot run its
 * lease timers, so its deliveries stay with it until RabbitMQ's heartbeat check drops its
 * connection; then they are delivered again. The time this takes is logged (the README states the
 * bound in heartbeats); the test asserts only that the delivery comes back to another worker.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { RabbitMQBroker } from '../brokers/rabbitmq.js';
import type { Delivery } from '../src/broker.js';
import { rabbitNamespace, rabbitUrl } from './helpers/rabbitmq.js';

const ns = rabbitNamespace('frozen');
afterAll(() => ns.sweep());

/** Starts a worker process that fetches one message (lease `leaseMs`) with `heartbeatSeconds`, and waits until it holds it. */
async function frozenCandidate(group: string, heartbeatSeconds: number, leaseMs: number): Promise<ReturnType<typeof spawn>> {
  const script = `
    import { RabbitMQBroker } from ${JSON.stringify(fileURLToPath(new URL('../brokers/rabbitmq.ts', import.meta.url)))};
    const b = new RabbitMQBroker({ url: process.env.T_URL, prefix: process.env.T_PREFIX, heartbeatSeconds: ${heartbeatSeconds} });
    let got = [];
    while (got.length === 0) got = await b.fetch(process.env.T_GROUP, 1, { leaseMs: ${leaseMs}, waitMs: 1000 });
    console.log('got ' + got[0].body);
    // Renews the lease as a running handler would, until the process is frozen.
    setInterval(() => void b.extend(got, ${leaseMs}), ${Math.floor(leaseMs / 3)});
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    env: { ...process.env, T_URL: rabbitUrl, T_PREFIX: ns.prefix, T_GROUP: group },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('got job\n')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`worker exited early with ${String(code)}`)));
  });
  return child;
}

describe('RabbitMQ broker: frozen worker', () => {
  it('a SIGSTOPped worker keeps its delivery until the heartbeat drops its connection, then it is delivered again', async () => {
    const group = `g-${randomUUID().slice(0, 8)}`;
    const other = new RabbitMQBroker({ url: rabbitUrl, prefix: ns.prefix });
    try {
      await other.publish(group, 'job');
      const heartbeatSeconds = Number(process.env.TASUKI_FROZEN_HEARTBEAT ?? 2);
      const child = await frozenCandidate(group, heartbeatSeconds, 3000);
      const frozenAt = Date.now();
      child.kill('SIGSTOP');
      let again: Delivery | undefined;
      try {
        const until = Date.now() + 30_000 + heartbeatSeconds * 4000;
        while (!again && Date.now() < until) [again] = await other.fetch(group, 1, { leaseMs: 30_000, waitMs: 500 });
      } finally {
        child.kill('SIGKILL');
      }
      console.log(
        `rabbitmq frozen worker (heartbeat ${heartbeatSeconds} s, lease 3 s): delivered again after ${Date.now() - frozenAt} ms`,
      );
      expect(again?.body).toBe('job');
      expect(again?.redelivered).toBe(true);
      await other.ack(again as Delivery);
      await other.purge(group);
    } finally {
      await other.close();
    }
  }, 120_000);
});
