/** A small queue used by the worker's prefetch buffer and the memory broker's ready lists. */

/**
 * A double-ended queue on a ring buffer: O(1) push, shift and unshift (amortised: the buffer doubles
 * when full and halves when three quarters empty).
 */
export class Deque<T> {
  private buf: Array<T | undefined> = new Array<T | undefined>(16);
  private head = 0;
  private mask = 15;
  /** Number of items. */
  length = 0;

  /** Adds an item at the back. */
  push(item: T): void {
    if (this.length === this.buf.length) this.resize(this.buf.length * 2);
    this.buf[(this.head + this.length) & this.mask] = item;
    this.length++;
  }

  /** Adds an item at the front. */
  unshift(item: T): void {
    if (this.length === this.buf.length) this.resize(this.buf.length * 2);
    this.head = (this.head - 1) & this.mask;
    this.buf[this.head] = item;
    this.length++;
  }

  /** Takes the front item (undefined when empty). */
  shift(): T | undefined {
    if (this.length === 0) return undefined;
    const item = this.buf[this.head];
    this.buf[this.head] = undefined;
    this.head = (this.head + 1) & this.mask;
    this.length--;
    if (this.buf.length > 1024 && this.length <= this.buf.length >>> 2) this.resize(this.buf.length >>> 1);
    return item;
  }

  /** Takes every item, front first, leaving the queue empty. */
  takeAll(): T[] {
    const out = new Array<T>(this.length);
    for (let i = 0; i < out.length; i++) out[i] = this.buf[(this.head + i) & this.mask] as T;
    this.buf = new Array<T | undefined>(16);
    this.head = 0;
    this.mask = 15;
    this.length = 0;
    return out;
  }

  private resize(capacity: number): void {
    const next = new Array<T | undefined>(capacity);
    for (let i = 0; i < this.length; i++) next[i] = this.buf[(this.head + i) & this.mask];
    this.buf = next;
    this.head = 0;
    this.mask = capacity - 1;
  }
}
