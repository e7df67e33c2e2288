/**
 * Delayed messages of the in-memory broker (`./memory.ts`): a binary min-heap on (`at`, `seq`), so
 * that equal due times keep publish order.
 */

/** What the heap orders by. */
export interface Timed {
  /** Due time (epoch ms). */
  at: number;
  /** Sequence number (publish order). */
  seq: number;
}

/** A binary min-heap on (`at`, `seq`). */
export class DelayHeap<Entry extends Timed> {
  private readonly items: Entry[] = [];

  get length(): number {
    return this.items.length;
  }

  /** The entry due first, if any. */
  peek(): Entry | undefined {
    return this.items[0];
  }

  push(entry: Entry): void {
    const items = this.items;
    let i = items.length;
    items.push(entry);
    while (i > 0) {
      const parent = (i - 1) >>> 1;
      const p = items[parent] as Entry;
      if (!before(entry, p)) break;
      items[i] = p;
      i = parent;
    }
    items[i] = entry;
  }

  pop(): Entry | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (top === undefined || last === undefined || items.length === 0) return top;
    const n = items.length;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && before(items[r] as Entry, items[l] as Entry) ? r : l;
      const child = items[c] as Entry;
      if (!before(child, last)) break;
      items[i] = child;
      i = c;
    }
    items[i] = last;
    return top;
  }
}

function before(a: Timed, b: Timed): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

