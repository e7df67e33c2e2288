/** `tasuki inspect` of a task held back by flow control shows why it waits (table and `--json`). */
import { expect, it } from 'vitest';
import { Server } from '../src/server.js';
import { silentLogger } from '../src/logger.js';
import { inspect } from '../cli/views.js';
import type { Output } from '../cli/format.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function capture(json: boolean): Output & { text(): string } {
  const lines: string[] = [];
  return { json, tty: false, line: (t = '') => void lines.push(t), paint: (_c, t) => t, text: () => lines.join('\n') };
}

it('inspect shows the hold of a task at its key concurrency bound, and none once it ran', async () => {
  const server = new Server({ logger: silentLogger, fetchWaitMs: 200 });
  let open: () => void = () => undefined;
  const gate = new Promise<void>((r) => (open = r));
  const task = server.add('cliwait', 'w', async () => gate);
  const client = server.client();
  try {
    await server.run('cliwait', 2, { keyConcurrency: 1 });
    const [, second] = await client.with({ key: 'acme' }).sendMany(task, [[], []]);
    const id = second as string;
    while ((await client.getStatus(id))?.waiting === undefined) await sleep(10);
    const table = capture(false);
    await inspect(client, table, id);
    expect(table.text()).toMatch(/held back\s+key-concurrency \(key acme\)/);
    const json = capture(true);
    await inspect(client, json, id);
    expect(JSON.parse(json.text()).waiting).toEqual({ reason: 'key-concurrency', key: 'acme' });
    open();
    await client.getResult(id, 10_000);
    const after = capture(true);
    await inspect(client, after, id);
    expect(JSON.parse(after.text()).waiting).toBeNull();
  } finally {
    open();
    await server.shutdown(1000);
  }
});
