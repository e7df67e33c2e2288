/**
 * The tick and wait handlers, registered by every server for the groups it runs. A tick is an
 * ordinary delayed task with a deterministic id, held by the broker until its fire time: it reads
 * the schedule record, decides (see `plan.ts`), writes the record with its plan by compare-and-set,
 * then sends the plan's fires and the next tick. No process keeps a timer or a leader lease; a tick of
 * an older definition (`gen`), of a removed or paused schedule, or one that another tick has already
 * covered does nothing, so chains started twice (by several upserts) merge into one.
 */
import type { Backend } from '../backend.js';
import type { Client } from '../client.js';
import { ConnectionError, UnsupportedError } from '../errors.js';
import type { ServerEvents } from '../events.js';
import type { Logger } from '../logger.js';
import { isFinalStatus } from '../state.js';
import type { Registration } from '../worker-context.js';
import { planTick } from './plan.js';
import { fireId, parseRecord, type ScheduleRecord, type TickPlan } from './record.js';
import { sendFire, sendFires, sendTick, sendUnsentFires, sendWait, TICK_TASK, WAIT_TASK } from './send.js';
import type { ScheduleStore } from './store.js';

/** Compare-and-set attempts of one tick before it fails (and is retried through the broker). */
const CAS_ATTEMPTS = 50;

/** What the handlers need from their server. */
export interface TickContext {
  backend: Backend;
  logger: Logger;
  /** The server's client (sends share its connections). */
  client(): Client;
  /** Emits a server event. */
  emit<K extends 'scheduleFired' | 'scheduleMissed'>(event: K, ...args: ServerEvents[K]): void;
}

/** The store of a backend, or a typed error saying it has none. */
export function storeOf(backend: Backend): ScheduleStore {
  const store = backend.scheduleStore;
  if (store === undefined) throw new UnsupportedError(`the ${backend.kind} backend does not store schedules`);
  return store;
}

/** Whether the fire with this id is still unfinished (sent, running, waiting for a retry). */
async function busy(backend: Backend, id: string | null): Promise<boolean> {
  if (id === null) return false;
  const state = await backend.read(id);
  return state !== null && !isFinalStatus(state.status);
}

/**
 * Clears the `unsent` mark of `rec`'s last tick once its fires were sent, if `rec` is still stored at
 * `rev`. A write that fails means another tick or an edit wrote since, and that one sent the plan's
 * fires again first if it was still marked.
 */
async function markSent(store: ScheduleStore, rec: ScheduleRecord, rev: number): Promise<void> {
  if (rec.lastTick?.unsent !== true) return;
  const { unsent: _sent, ...plan } = rec.lastTick;
  await store.writeSchedule(rec.name, JSON.stringify({ ...rec, lastTick: plan }), rev);
}

/** The tick and wait registrations of a server, one pair per group, made on first lookup. */
export class ScheduleTicks {
  private readonly regs = new Map<string, Registration>();

  /** @param ctx the server's side */
  constructor(private readonly ctx: TickContext) {}

  /** The registration of a tick or wait task of `group`; undefined for any other name. */
  lookup(group: string, name: string): Registration | undefined {
    if (name !== TICK_TASK && name !== WAIT_TASK) return undefined;
    const key = `${group}\u0000${name}`;
    let reg = this.regs.get(key);
    if (reg === undefined) {
      const fn =
        name === TICK_TASK
          ? (schedule: string, gen: string, at: number) => this.tick(schedule, gen, at)
          : (schedule: string, gen: string, at: number, attempt: number) => this.wait(schedule, gen, at, attempt);
      reg = { group, name, fn, options: { args: name === TICK_TASK ? ['string', 'string', 'number'] : ['string', 'string', 'number', 'number'] } };
      this.regs.set(key, reg);
    }
    return reg;
  }

  /** The tick of schedule `name` (definition `gen`) at `slot`; resolves with what it did. */
  async tick(name: string, gen: string, slot: number): Promise<string> {
    const store = storeOf(this.ctx.backend);
    const client = this.ctx.client();
    for (let i = 0; i < CAS_ATTEMPTS; i++) {
      const stored = await store.readSchedule(name);
      if (stored === null) return 'removed';
      const rec = parseRecord(stored.data, name);
      if (rec.gen !== gen) return 'superseded';
      if (rec.lastTick !== null && rec.lastTick.slot === slot) {
        // This tick was handled and its process died before its sends completed: they are repeated (idempotent).
        await this.sendPlan(client, rec, rec.lastTick);
        await markSent(store, rec, stored.rev);
        return 'repeated';
      }
      if (slot <= rec.cursor) return 'covered';
      if (rec.paused) return 'paused';
      // The record is written before its fires are sent, so that only the fires of the plan that won
      // the compare-and-set ever run (two ticks racing with different clocks may choose different
      // fires). A process that dies after the write and before the sends is made good by whoever
      // comes next: the tick's redelivery (the branch above), or any later tick, which sends the
      // previous plan's fires here while it is still marked unsent, before it plans.
      await sendUnsentFires(client, rec);
      const previousBusy = rec.def.overlap !== 'allow' && (await busy(this.ctx.backend, rec.lastFireId));
      const plan = planTick(rec, slot, Date.now(), previousBusy);
      const last = plan.fires.length > 0 ? (plan.fires[plan.fires.length - 1] as number) : null;
      const tickPlan: TickPlan = { slot, fires: plan.fires, next: plan.next, buffered: plan.buffered };
      if (plan.fires.length > 0) tickPlan.unsent = true;
      const updated: ScheduleRecord = {
        ...rec,
        cursor: plan.cursor,
        fires: rec.fires + plan.fires.length,
        missed: rec.missed + plan.missed.count,
        skipped: rec.skipped + plan.skipped.count,
        lastFireAt: last ?? rec.lastFireAt,
        lastFireId: last === null ? rec.lastFireId : fireId(name, last),
        nextFireAt: plan.next,
        buffered: plan.buffered ?? rec.buffered,
        lastTick: tickPlan,
      };
      if (!(await store.writeSchedule(name, JSON.stringify(updated), stored.rev))) continue;
      for (const at of plan.fires) this.ctx.emit('scheduleFired', { schedule: name, fireAt: at, id: fireId(name, at) });
      if (plan.missed.count > 0) {
        this.ctx.logger.warn('schedule fires missed', { schedule: name, count: plan.missed.count, latest: plan.missed.latest });
        this.ctx.emit('scheduleMissed', { schedule: name, reason: 'late', count: plan.missed.count, latest: plan.missed.latest });
      }
      if (plan.skipped.count > 0) this.ctx.emit('scheduleMissed', { schedule: name, reason: 'overlap', count: plan.skipped.count, latest: plan.skipped.latest });
      await this.sendPlan(client, updated, tickPlan);
      // Revision stored.rev + 1 is this tick's own write.
      await markSent(store, updated, stored.rev + 1);
      return 'ticked';
    }
    throw new ConnectionError(`schedule ${JSON.stringify(name)}: the record changed under ${CAS_ATTEMPTS} attempts of one tick; it is retried`);
  }

  /** Sends what a tick decided: its fires, then its wait and next tick (each an idempotent send). */
  private async sendPlan(client: Client, rec: ScheduleRecord, plan: TickPlan): Promise<void> {
    await sendFires(client, rec, plan);
    if (plan.buffered !== null && rec.buffered === plan.buffered) await sendWait(client, rec, plan.buffered, 0);
    if (plan.next !== null) await sendTick(client, rec, plan.next);
  }

  /** A re-check of the fire buffered at `at`: fires it once the previous fire finished, else checks again later. */
  async wait(name: string, gen: string, at: number, attempt: number): Promise<string> {
    const store = storeOf(this.ctx.backend);
    const client = this.ctx.client();
    for (let i = 0; i < CAS_ATTEMPTS; i++) {
      const stored = await store.readSchedule(name);
      if (stored === null) return 'removed';
      const rec = parseRecord(stored.data, name);
      if (rec.gen !== gen || rec.buffered !== at) return 'done';
      if (rec.paused) return 'paused';
      if (await busy(this.ctx.backend, rec.lastFireId)) {
        await sendWait(client, rec, at, attempt + 1);
        return 'waiting';
      }
      const id = fireId(name, at);
      await sendFire(client, rec, at);
      const updated: ScheduleRecord = { ...rec, buffered: null, fires: rec.fires + 1, lastFireAt: at, lastFireId: id };
      if (!(await store.writeSchedule(name, JSON.stringify(updated), stored.rev))) continue;
      this.ctx.emit('scheduleFired', { schedule: name, fireAt: at, id });
      return 'fired';
    }
    throw new ConnectionError(`schedule ${JSON.stringify(name)}: the record changed under ${CAS_ATTEMPTS} attempts of one wait; it is retried`);
  }
}
