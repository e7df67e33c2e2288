/**
 * Re-driving dead letters from a client: a dead-lettered task usually has a final failure state,
 * which would make workers skip it, so each decodable one gets a fresh `sent` state first (a stored
 * success is kept: guard `notSuccess`); then the broker moves the messages back to their queue.
 */
import type { Backend, Expiry } from './backend.js';
import type { Broker } from './broker.js';
import { decodeMessage, type TaskMessage } from './message.js';
import { redriveState } from './outgoing.js';

/** Dead letters read per page while states are reset. */
const PAGE = 500;

/** Resets the states of `group`'s dead letters (the given ids, or all), then re-drives them; resolves with how many moved. */
export async function redriveDeadLetters(broker: Broker, backend: Backend, statusExpires: Expiry, group: string, ids?: ReadonlyArray<string>): Promise<number> {
  const wanted = ids === undefined ? undefined : new Set(ids);
  for (let offset = 0; ; offset += PAGE) {
    const batch = await broker.listDeadLetters(group, { offset, limit: PAGE });
    await Promise.all(batch.filter((d) => wanted === undefined || wanted.has(d.id)).map((d) => resetForRedrive(backend, statusExpires, d.body)));
    if (batch.length < PAGE) break;
  }
  return broker.redriveDeadLetters(group, ids);
}

async function resetForRedrive(backend: Backend, statusExpires: Expiry, body: string): Promise<void> {
  if (statusExpires === 0) return;
  let msg: TaskMessage;
  try {
    msg = decodeMessage(body);
  } catch {
    return; // still undecodable: it will be dead-lettered again, with its reason
  }
  const state = redriveState(msg, Date.now());
  await backend.write({ state, stateTtl: statusExpires, previous: 'refused', guard: 'notSuccess' });
}
