/**
 * Where schedule records live: an optional capability of a backend (`backend.scheduleStore`), shared
 * by every process of a deployment. The store only keeps opaque JSON text with a revision number and
 * offers compare-and-set; every schedule rule (atomic idempotent upsert, the tick's bookkeeping) is
 * built on that in the core. Implementations: `backends/memory-schedules.ts`,
 * `backends/redis-schedules.ts`, `backends/postgres-schedules.ts`; each passes `test/contract/schedules.ts`.
 */

/** One stored schedule record. */
export interface StoredSchedule {
  /** Schedule name. */
  name: string;
  /** Revision: 1 after the first write, incremented by each write. */
  rev: number;
  /** The record, JSON text (opaque to the store). */
  data: string;
}

/**
 * A compare-and-set store of schedule records. Rules (checked by the contract suite):
 * - `writeSchedule(name, data, expectedRev)` stores `data` with revision `expectedRev + 1` only if
 *   the stored revision is `expectedRev` (0: only if no record is stored), atomically: of two
 *   concurrent writes with the same `expectedRev`, at most one passes.
 * - Records never expire; `deleteSchedule` removes one (a later write with `expectedRev` 0 creates it again).
 * - Methods reject with a `TasukiError` (`ConnectionError` for transport failures).
 */
export interface ScheduleStore {
  /** Reads one record; `null` when absent. */
  readSchedule(name: string): Promise<StoredSchedule | null>;
  /** Every record, in no particular order. */
  listSchedules(): Promise<StoredSchedule[]>;
  /** Compare-and-set write (see the rules above); true when written. */
  writeSchedule(name: string, data: string, expectedRev: number): Promise<boolean>;
  /** Deletes a record; true when one was stored. */
  deleteSchedule(name: string): Promise<boolean>;
}
