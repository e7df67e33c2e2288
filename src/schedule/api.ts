/**
 * `client.schedules`: upsert, list, pause, resume, trigger and remove named schedules. Records live
 * in the backend's schedule store; fires are sent by ticks that run on the workers of the
 * schedule's group (see `tick.ts`).
 */
import { randomUUID } from 'node:crypto';
import type { Backend, Expiry } from '../backend.js';
import type { Client } from '../client.js';
import { InvalidOptionError, NotFoundError } from '../errors.js';
import type { TaskId, TaskRef } from '../task.js';
import { assertScheduleName, definitionHash, normalizeDefinition } from './definition.js';
import { parseRecord, toInfo, type ScheduleRecord } from './record.js';
import { sendFire, sendTick, sendUnsentFires } from './send.js';
import type { ScheduleStore } from './store.js';
import { storeOf } from './tick.js';
import { nextFireAfter } from './timing.js';
import type { ScheduleDefinition, ScheduleInfo } from './types.js';

/** Read-modify-write attempts of one call before it gives up (only under heavy contention). */
const CAS_ATTEMPTS = 50;

/** Named recurring schedules (`client.schedules`). */
export class Schedules {
  /**
   * @param client the client whose connections the sends use
   * @param backend where records live (its `scheduleStore`)
   * @param statusExpires the client's status expiry (explicit-id sends need stored states)
   */
  constructor(
    private readonly client: Client,
    private readonly backend: Backend,
    private readonly statusExpires: Expiry,
  ) {}

  private store(): ScheduleStore {
    if (this.statusExpires === 0) throw new InvalidOptionError('schedules send with explicit ids, which need stored states: statusExpires must not be 0');
    return storeOf(this.backend);
  }

  /**
   * Creates or updates the schedule `name`, which sends `ref` with `args` at each fire time. Atomic
   * and idempotent: any number of processes may upsert the same schedule (at boot, say); the same
   * definition changes nothing (counters and the pending tick are kept), a different one replaces
   * the old one, whose pending tick then does nothing. Resolves with the stored schedule.
   * Rejects with `UnsupportedError` (ERR_UNSUPPORTED) when the backend cannot store schedules.
   */
  async upsert<A extends unknown[], R>(name: string, definition: ScheduleDefinition, ref: TaskRef<A, R>, ...args: NoInfer<A>): Promise<ScheduleInfo> {
    assertScheduleName(name);
    if (ref === null || typeof ref !== 'object') throw new InvalidOptionError('upsert needs a task reference');
    const def = normalizeDefinition(ref.group, ref.name, definition, args);
    const hash = definitionHash(def);
    const store = this.store();
    for (let i = 0; i < CAS_ATTEMPTS; i++) {
      const stored = await store.readSchedule(name);
      const cur = stored === null ? null : parseRecord(stored.data, name);
      let rec: ScheduleRecord;
      if (cur !== null && cur.hash === hash) {
        rec = cur;
      } else {
        const now = Date.now();
        rec = {
          v: 1,
          name,
          gen: randomUUID().replace(/-/g, '').slice(0, 16),
          hash,
          def,
          paused: cur?.paused ?? false,
          cursor: now,
          fires: 0,
          missed: 0,
          skipped: 0,
          lastFireAt: cur?.lastFireAt ?? null,
          lastFireId: cur?.lastFireId ?? null,
          nextFireAt: nextFireAfter(def, now),
          buffered: null,
          lastTick: null,
          createdAt: cur?.createdAt ?? now,
          updatedAt: now,
        };
        // The last tick's fires may not all have been sent (its process died after writing the
        // record); the new definition drops that plan, so they are sent now.
        if (cur !== null) await sendUnsentFires(this.client, cur);
        if (!(await store.writeSchedule(name, JSON.stringify(rec), stored?.rev ?? 0))) continue;
      }
      // The pending tick: sent again by every upsert, a no-op when it is already held (same id).
      if (!rec.paused && rec.nextFireAt !== null) {
        await sendTick(this.client, rec, rec.nextFireAt);
        // Overdue: its workers were down, or its tick was lost (purged, dead-lettered). A tick for the
        // next fire time revives the chain; if the old tick still comes, the two merge (the later one finds its time covered).
        const now = Date.now();
        const next = rec.nextFireAt < now ? nextFireAfter(rec.def, now) : null;
        if (next !== null) await sendTick(this.client, rec, next);
      }
      return toInfo(rec);
    }
    throw new InvalidOptionError(`schedule ${JSON.stringify(name)} changed under ${CAS_ATTEMPTS} upsert attempts`);
  }

  /** The schedule `name`, or `null`. */
  async get(name: string): Promise<ScheduleInfo | null> {
    assertScheduleName(name);
    const stored = await this.store().readSchedule(name);
    return stored === null ? null : toInfo(parseRecord(stored.data, name));
  }

  /** Every schedule, by name. */
  async list(): Promise<ScheduleInfo[]> {
    const all = await this.store().listSchedules();
    return all.map((s) => toInfo(parseRecord(s.data, s.name))).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /**
   * Pauses `name`: no fire until {@link resume}; its pending tick ends the chain. Fires while paused
   * are dropped (not counted as missed). Rejects with `NotFoundError` for an unknown name.
   */
  async pause(name: string): Promise<ScheduleInfo> {
    return this.change(name, (r) => (r.paused ? null : { ...r, paused: true }));
  }

  /** Resumes `name` from now on (the next fire time after now). Rejects with `NotFoundError` for an unknown name. */
  async resume(name: string): Promise<ScheduleInfo> {
    const now = Date.now();
    const rec = await this.change(name, (r) => (r.paused ? { ...r, paused: false, cursor: Math.max(r.cursor, now), buffered: null, lastTick: null, nextFireAt: nextFireAfter(r.def, Math.max(r.cursor, now)) } : null), true);
    return rec;
  }

  /**
   * Sends one fire of `name` now, outside its timing (not counted in `fires` nor `limit`, not
   * checked against `overlap`); resolves with its task id (`<name>@trigger-<uuid>`). Works on a
   * paused schedule too. Rejects with `NotFoundError` for an unknown name.
   */
  async trigger(name: string): Promise<TaskId> {
    assertScheduleName(name);
    const stored = await this.store().readSchedule(name);
    if (stored === null) throw new NotFoundError(`no schedule named ${JSON.stringify(name)}`);
    const rec = parseRecord(stored.data, name);
    return sendFire(this.client, rec, Date.now(), `${name}@trigger-${randomUUID()}`);
  }

  /** Removes `name`; its pending tick then does nothing. Resolves `false` when there was none. Fires already sent still run. */
  async remove(name: string): Promise<boolean> {
    assertScheduleName(name);
    return this.store().deleteSchedule(name);
  }

  /** Read-modify-write of a record; `edit` returns `null` for no change. `tick`: send the pending tick after. */
  private async change(name: string, edit: (r: ScheduleRecord) => ScheduleRecord | null, tick = false): Promise<ScheduleInfo> {
    assertScheduleName(name);
    const store = this.store();
    for (let i = 0; i < CAS_ATTEMPTS; i++) {
      const stored = await store.readSchedule(name);
      if (stored === null) throw new NotFoundError(`no schedule named ${JSON.stringify(name)}`);
      const cur = parseRecord(stored.data, name);
      const next = edit(cur);
      if (next === null) return toInfo(cur);
      // An edit that drops the last tick's plan (resume) sends its fires first, as the upsert does.
      if (next.lastTick === null) await sendUnsentFires(this.client, cur);
      if (!(await store.writeSchedule(name, JSON.stringify(next), stored.rev))) continue;
      if (tick && !next.paused && next.nextFireAt !== null) await sendTick(this.client, next, next.nextFireAt);
      return toInfo(next);
    }
    throw new InvalidOptionError(`schedule ${JSON.stringify(name)} changed under ${CAS_ATTEMPTS} attempts`);
  }
}
