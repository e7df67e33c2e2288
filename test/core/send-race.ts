/**
 * The send's `sent` write and its publish go out together (generated ids): the worker may fetch the
 * message and store `running`, or even the final state, before the client's `sent` write lands. The
 * `sent` write's `absent` guard must then refuse it, so the later state is kept. Run over several
 * broker + backend pairs, with the client's `sent` write held back until the worker got ahead.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import type { Backend, StateWrite, WriteOutcome } from '../../src/backend.js';
import { Client, Server, silentLogger } from '../../src/index.js';
import type { CoreHarness } from './suite.js';
import { until } from './suite.js';

/** A backend whose `sent` writes wait for `release()`; the outcomes of those writes are kept. */
function holdingSentWrites(inner: Backend): { backend: Backend; release(): void; outcomes: WriteOutcome[]; held(): number } {
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  const outcomes: WriteOutcome[] = [];
  let held = 0;
  const backend: Backend = {
    kind: inner.kind,
    connect: () => inner.connect(),
    close: () => inner.close(),
    async write(w: StateWrite): Promise<WriteOutcome> {
      if (w.state.status !== 'sent') return inner.write(w);
      held++;
      await gate;
      const out = await inner.write(w);
      outcomes.push(out);
      return out;
    },
    read: (id) => inner.read(id),
    readMany: (ids) => inner.readMany(ids),
    readResult: (id) => inner.readResult(id),
    delete: (id) => inner.delete(id),
    watchFinal: inner.watchFinal === undefined ? undefined : (id, listener) => (inner.watchFinal as NonNullable<Backend['watchFinal']>).call(inner, id, listener),
  };
  return { backend, release: () => open(), outcomes, held: () => held };
}

/** Registers the send-race tests for one broker + backend pair. */
export function sendRaceSuite(name: string, makeHarness: () => CoreHarness): void {
  describe(`send race: ${name}`, () => {
    let harness: CoreHarness;
    let server: Server;
    let client: Client;
    let reader: Backend;
    let group: string;

    beforeEach(() => {
      harness = makeHarness();
      group = `race-${randomUUID().slice(0, 8)}`;
      server = new Server({ broker: harness.broker(), backend: harness.backend(), logger: silentLogger, fetchWaitMs: 300 });
      reader = harness.backend();
    });

    afterEach(async () => {
      await server.broker.purge(group).catch(() => undefined);
      await server.shutdown(1000);
      await client?.close();
      await reader.close();
      await harness.teardown?.();
    });

    it('a running state stored before the late sent write is kept; the sent write is refused', async () => {
      let finish!: () => void;
      const handlerGate = new Promise<void>((r) => (finish = r));
      server.add(group, 'slow', async (x: number) => {
        await handlerGate;
        return x * 2;
      });
      // The id is not known before send resolves: the worker's `started` event tells it.
      let started!: (id: string) => void;
      const handlerStarted = new Promise<string>((r) => (started = r));
      server.on('started', (e) => started(e.id));
      await server.run(group, 1);
      const hold = holdingSentWrites(harness.backend());
      client = new Client({ broker: harness.broker(), backend: hold.backend, logger: silentLogger });
      const sending = client.send(group, 'slow', 21);
      const startedId = await handlerStarted;
      // The handler runs while the client's `sent` write has not been made yet.
      expect(hold.held()).toBe(1);
      expect(hold.outcomes).toHaveLength(0);
      expect((await reader.read(startedId))?.status).toBe('running');
      hold.release();
      const id = await sending;
      expect(id).toBe(startedId);
      expect(hold.outcomes).toHaveLength(1);
      expect(hold.outcomes[0]?.written).toBe(false);
      expect(hold.outcomes[0]?.previous?.status).toBe('running');
      expect((await reader.read(id))?.status).toBe('running');
      finish();
      const r = await client.getResult(id, 10_000);
      expect(r.status).toBe('success');
      expect(r.value).toBe(42);
    });

    it('a success stored before the late sent write stays success', async () => {
      server.add(group, 'fast', (x: number) => x + 1);
      let succeeded!: (id: string) => void;
      const done = new Promise<string>((r) => (succeeded = r));
      server.on('succeeded', (e) => succeeded(e.id));
      await server.run(group, 1);
      const hold = holdingSentWrites(harness.backend());
      client = new Client({ broker: harness.broker(), backend: hold.backend, logger: silentLogger });
      const sending = client.send(group, 'fast', 1);
      const doneId = await done;
      await until(async () => (await reader.read(doneId))?.status === 'success', 10_000, 'the stored success');
      hold.release();
      const id = await sending;
      expect(id).toBe(doneId);
      expect(hold.outcomes[0]?.written).toBe(false);
      expect(hold.outcomes[0]?.previous?.status).toBe('success');
      const status = await client.getStatus(id);
      expect(status?.status).toBe('success');
      const r = await client.getResult(id, 10_000);
      expect(r.value).toBe(2);
    });
  });
}
