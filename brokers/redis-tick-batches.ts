/**
 * Tick batching of the Redis broker: the publishes (and the acks) issued in one event-loop tick are
 * grouped by queue and sent at its end, one script call per group instead of one per operation.
 */

/** One item of a {@link TickBatches} and how to settle its caller's promise. */
interface Batched<T> {
  item: T;
  resolve(): void;
  reject(err: unknown): void;
}

/**
 * Operations issued in one event-loop tick, grouped by queue, sent together at its end: `send` gets
 * up to `maxPerCall` items of one group per call, and each call's outcome settles its own items (a
 * failed call rejects only the items it carried, with the error `fail` makes of it).
 */
export class TickBatches<T> {
  private pending = new Map<string, Array<Batched<T>>>();
  private scheduled = false;

  /**
   * @param maxPerCall most items of one group per `send`
   * @param send sends the items of one group (one script call)
   * @param fail turns a failed call's error into the error its items reject with
   */
  constructor(
    private readonly maxPerCall: number,
    private readonly send: (group: string, items: T[]) => Promise<unknown>,
    private readonly fail: (err: unknown) => unknown,
  ) {}

  /** Adds an item; resolves once the call that carries it succeeded. */
  add(group: string, item: T): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let list = this.pending.get(group);
      if (list === undefined) this.pending.set(group, (list = []));
      list.push({ item, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        process.nextTick(this.flush);
      }
    });
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    const all = this.pending;
    this.pending = new Map();
    for (const [group, list] of all) {
      for (let i = 0; i < list.length; i += this.maxPerCall) {
        const chunk = list.length <= this.maxPerCall ? list : list.slice(i, i + this.maxPerCall);
        this.send(
          group,
          chunk.map((b) => b.item),
        ).then(
          () => {
            for (const b of chunk) b.resolve();
          },
          (err: unknown) => {
            const e = this.fail(err);
            for (const b of chunk) b.reject(e);
          },
        );
      }
    }
  };
}
