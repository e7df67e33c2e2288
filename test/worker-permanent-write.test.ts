/**
 * A state write the backend refuses with an error another attempt does not cure (a stored record that
 * is no task state: `ERR_DECODE`) dead-letters the task's message after a few attempts, instead of
 * holding its slot and retrying for ever; connection errors are still retried until they pass.
 */
import { describe, expect, it } from 'vitest';
import { Client, ConnectionError, DecodeError, Server, silentLogger, type StateWrite, type WriteOutcome } from '../src/index.js';
import { MemoryBroker } from '../brokers/memory.js';
import { MemoryBackend, MemoryBackendStore } from '../backends/memory.js';

/** Fails writes of chosen tasks: with a permanent error for ever, or with a connection error a few times. */
class FaultyBackend extends MemoryBackend {
  readonly attempts = new Map<string, number>();
  constructor(
    store: MemoryBackendStore,
    private readonly faults: Map<string, { status?: string; error: 'decode' | 'connection'; times: number }>,
  ) {
    super({ store });
  }

  override async write(w: StateWrite): Promise<WriteOutcome> {
    const f = this.faults.get(w.state.id);
    if (f !== undefined && (f.status === undefined || f.status === w.state.status) && f.times > 0) {
      f.times--;
      this.attempts.set(w.state.id, (this.attempts.get(w.state.id) ?? 0) + 1);
      throw f.error === 'decode' ? new DecodeError(`stored value at state:${w.state.id} is not a task state`) : new ConnectionError('redis backend: write timed out');
    }
    return super.write(w);
  }
}

describe('worker: a state write refused for good', () => {
  it('dead-letters the message with the error code after 3 attempts; the slot serves the next tasks', async () => {
    const store = new MemoryBackendStore();
    const broker = new MemoryBroker();
    const faults = new Map<string, { status?: string; error: 'decode' | 'connection'; times: number }>([
      // The claim is refused for good: the handler never runs.
      ['bad-claim', { status: 'running', error: 'decode', times: Infinity }],
      // The final write is refused for good, after the handler ran.
      ['bad-final', { status: 'success', error: 'decode', times: Infinity }],
      // Two connection errors, then the write goes through.
      ['flaky', { error: 'connection', times: 2 }],
    ]);
    const backend = new FaultyBackend(store, faults);
    const server = new Server({ broker, backend, logger: silentLogger });
    const client = new Client({ broker, backend: new MemoryBackend({ store }), logger: silentLogger });
    const ran: string[] = [];
    const failed: string[] = [];
    server.on('failed', (e) => failed.push(e.id));
    const task = server.add('g', 'echo', (x: string) => {
      ran.push(x);
      return x;
    });
    // One slot: a write retried for ever would hold it, and 'after' would never run.
    await server.run('g', 1);
    try {
      for (const id of ['bad-claim', 'bad-final', 'flaky', 'after']) await client.with({ id }).send(task, id);
      expect((await client.getResult('after', 20_000)).value).toBe('after');
      expect((await client.getResult('flaky', 20_000)).value).toBe('flaky');
      // A final write is retried outside the handler's slot: its dead letter may come after 'after'.
      await expect.poll(async () => (await client.deadLetters('g')).length, { timeout: 20_000 }).toBe(2);
      const dead = await client.deadLetters('g');
      expect(dead.map((d) => [(JSON.parse(d.body) as { id: string }).id, d.reason.code]).sort()).toEqual([['bad-claim', 'ERR_DECODE'], ['bad-final', 'ERR_DECODE']]);
      expect(dead.every((d) => d.reason.message.includes('could not be written (3 attempts)'))).toBe(true);
      expect(backend.attempts.get('bad-claim')).toBe(3);
      expect(backend.attempts.get('bad-final')).toBe(3);
      expect(backend.attempts.get('flaky')).toBe(2);
      expect(ran).toEqual(['bad-final', 'flaky', 'after']);
      expect(failed.sort()).toEqual(['bad-claim', 'bad-final']);
      // Nothing is lost: the dead letters run once the cause is gone.
      faults.clear();
      expect(await client.redriveDeadLetters('g')).toBe(2);
      expect((await client.getResult('bad-claim', 20_000)).value).toBe('bad-claim');
      expect((await client.getResult('bad-final', 20_000)).value).toBe('bad-final');
    } finally {
      await server.shutdown(5000);
      await client.close();
    }
  });
});
