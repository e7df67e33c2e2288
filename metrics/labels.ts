/**
 * Bounded label values of the metrics: a group and task name become labels only when they are
 * registered (on a server this instrumentation is attached to) or declared in the options. A name
 * seen only on the wire (a message for a task no worker here knows, an undecodable one) is counted
 * under {@link UNKNOWN_LABEL}. A name that the local code sends but nobody declared is taken as is up
 * to a cap, then counted under {@link OTHER_LABEL}: no input can make the series grow without bound.
 */
import type { TaskRef } from '../src/task.js';

/** Label value of a group or task name not registered here (read from the wire). */
export const UNKNOWN_LABEL = '_unknown';

/** Label value of sent tasks beyond {@link TaskLabels}' cap of undeclared names. */
export const OTHER_LABEL = '_other';

/** Where registered names come from (a server's `registered()`). */
export type NameSource = () => ReadonlyArray<Pick<TaskRef, 'group' | 'name'>>;

/** Shortest time in ms between two rebuilds of the known names after a miss. */
const REFRESH_MS = 1000;

/** The label pair of a (group, task). */
export interface LabelPair {
  /** `group` label value. */
  group: string;
  /** `task` label value. */
  task: string;
}

/** Maps group and task names to bounded label values. */
export class TaskLabels {
  private readonly sources: NameSource[] = [];
  private known = new Map<string, Set<string>>();
  private readonly declared: ReadonlyArray<Pick<TaskRef, 'group' | 'name'>>;
  private readonly extra = new Set<string>();
  private refreshedAt = -Infinity;

  /**
   * @param declared tasks declared up front (for a process that only sends)
   * @param maxUndeclared sent (group, task) pairs taken as labels beyond the known ones
   */
  constructor(
    declared: ReadonlyArray<Pick<TaskRef, 'group' | 'name'>>,
    private readonly maxUndeclared: number,
  ) {
    this.declared = [...declared];
    this.rebuild();
  }

  /** Adds a source of registered names (read again when a name is missed, at most once a second). */
  addSource(source: NameSource): void {
    this.sources.push(source);
    this.refreshedAt = -Infinity;
  }

  /** Known group names. */
  groups(): string[] {
    this.refresh(true);
    return [...this.known.keys()];
  }

  /** Labels of a name read by a worker (wire): unknown names map to {@link UNKNOWN_LABEL}. */
  worker(group: string, name: string | undefined): LabelPair {
    if (this.isKnown(group, name)) return { group, task: name as string };
    return { group: this.known.has(group) ? group : UNKNOWN_LABEL, task: UNKNOWN_LABEL };
  }

  /** Labels of a name sent by this process: known, or one of the first `maxUndeclared` others, else {@link OTHER_LABEL}. */
  send(group: string, name: string): LabelPair {
    if (this.isKnown(group, name)) return { group, task: name };
    const key = `${group}\u0000${name}`;
    if (this.extra.has(key)) return { group, task: name };
    if (this.extra.size < this.maxUndeclared) {
      this.extra.add(key);
      return { group, task: name };
    }
    return { group: OTHER_LABEL, task: OTHER_LABEL };
  }

  private isKnown(group: string, name: string | undefined): boolean {
    if (name === undefined) return false;
    if (this.known.get(group)?.has(name) === true) return true;
    return this.refresh(false) && this.known.get(group)?.has(name) === true;
  }

  /** Rebuilds the known names from the sources (`force`, or at most once per {@link REFRESH_MS}); true when rebuilt. */
  private refresh(force: boolean): boolean {
    const now = Date.now();
    if (!force && now - this.refreshedAt < REFRESH_MS) return false;
    this.refreshedAt = now;
    this.rebuild();
    return true;
  }

  private rebuild(): void {
    const known = new Map<string, Set<string>>();
    const add = (t: Pick<TaskRef, 'group' | 'name'>): void => {
      let names = known.get(t.group);
      if (names === undefined) known.set(t.group, (names = new Set()));
      names.add(t.name);
    };
    this.declared.forEach(add);
    for (const source of this.sources) source().forEach(add);
    this.known = known;
  }
}
