/**
 * The schedule store of the memory backend: records in a map shared by every memory backend on the
 * same {@link MemoryBackendStore} (several instances act like one backend server).
 */
import { ClosedError } from '../src/errors.js';
import type { ScheduleStore, StoredSchedule } from '../src/schedule/store.js';

/** Records of one memory store, by schedule name. */
export type MemoryScheduleRecords = Map<string, { rev: number; data: string }>;

/** In-process {@link ScheduleStore}. */
export class MemoryScheduleStore implements ScheduleStore {
  /**
   * @param records the shared map of records
   * @param closed whether the owning backend is closed (operations then reject with `ClosedError`)
   */
  constructor(
    private readonly records: MemoryScheduleRecords,
    private readonly closed: () => boolean,
  ) {}

  private check(): void {
    if (this.closed()) throw new ClosedError('memory backend');
  }

  /** @inheritdoc */
  async readSchedule(name: string): Promise<StoredSchedule | null> {
    this.check();
    const r = this.records.get(name);
    return r === undefined ? null : { name, rev: r.rev, data: r.data };
  }

  /** @inheritdoc */
  async listSchedules(): Promise<StoredSchedule[]> {
    this.check();
    return [...this.records].map(([name, r]) => ({ name, rev: r.rev, data: r.data }));
  }

  /** @inheritdoc */
  async writeSchedule(name: string, data: string, expectedRev: number): Promise<boolean> {
    this.check();
    const cur = this.records.get(name)?.rev ?? 0;
    if (cur !== expectedRev) return false;
    this.records.set(name, { rev: expectedRev + 1, data });
    return true;
  }

  /** @inheritdoc */
  async deleteSchedule(name: string): Promise<boolean> {
    this.check();
    return this.records.delete(name);
  }
}
