/**
 * Cheap per-task recording for the metrics: counts and histogram buckets are kept in plain numbers
 * per (group, task) series and handed to prom-client only when the registry is scraped. (prom-client
 * hashes and validates the label object on every `inc`/`observe`, about a microsecond each: too much
 * for a worker that runs tens of thousands of tasks a second.)
 */
import type { Registry } from 'prom-client';
import type { LabelPair } from './labels.js';

/** Bucket counts of one histogram series. */
export class Buckets {
  /** Observations per bucket (not cumulative); the last one is `+Inf`. */
  readonly counts: Float64Array;
  /** Sum of the observed values. */
  sum = 0;
  /** Number of observations. */
  count = 0;

  /** @param bounds upper bounds, ascending */
  constructor(private readonly bounds: ReadonlyArray<number>) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  /** Records one value. */
  observe(value: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && value > (b[i] as number)) i++;
    this.counts[i] = (this.counts[i] as number) + 1;
    this.sum += value;
    this.count++;
  }
}

/** One exported sample, in prom-client's `get()` shape. */
interface Sample {
  labels: Record<string, string | number>;
  value: number;
  metricName: string;
}

/** The part of a prom-client metric a registry uses (`get`, `reset`, name, help, type, aggregator). */
interface RegistryMetric {
  name: string;
  help: string;
  type: 'histogram';
  aggregator: 'sum';
  get(): Promise<{ name: string; help: string; type: 'histogram'; values: Sample[]; aggregator: 'sum' }>;
  reset(): void;
}

/**
 * A histogram whose series live in {@link Buckets} (filled by the caller) and that exports itself
 * to a prom-client registry in the standard text form (`_bucket{…,le}`, `_sum`, `_count`).
 */
export class LocalHistogram implements RegistryMetric {
  readonly type = 'histogram' as const;
  readonly aggregator = 'sum' as const;
  private readonly series: Array<{ labels: LabelPair; buckets: Buckets }> = [];

  /**
   * @param name metric name
   * @param help help text
   * @param bounds bucket upper bounds (sorted here)
   * @param registry where to register
   */
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly bounds: ReadonlyArray<number>,
    registry: Registry,
  ) {
    this.bounds = [...bounds].filter((b) => Number.isFinite(b)).sort((a, b) => a - b);
    // A registry takes any object with this shape; prom-client's types name only its own classes.
    registry.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  /** A new series for `labels`, to observe into. */
  add(labels: LabelPair): Buckets {
    const buckets = new Buckets(this.bounds);
    this.series.push({ labels, buckets });
    return buckets;
  }

  /** Samples of every series that has observations. */
  async get(): Promise<{ name: string; help: string; type: 'histogram'; values: Sample[]; aggregator: 'sum' }> {
    const values: Sample[] = [];
    const bucket = `${this.name}_bucket`;
    for (const { labels, buckets } of this.series) {
      if (buckets.count === 0) continue;
      const l = { group: labels.group, task: labels.task };
      let acc = 0;
      this.bounds.forEach((le, i) => {
        acc += buckets.counts[i] as number;
        values.push({ labels: { ...l, le }, value: acc, metricName: bucket });
      });
      values.push({ labels: { ...l, le: '+Inf' }, value: buckets.count, metricName: bucket });
      values.push({ labels: l, value: buckets.sum, metricName: `${this.name}_sum` });
      values.push({ labels: l, value: buckets.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  /** Forgets every observation (`registry.resetMetrics()`). */
  reset(): void {
    for (const { buckets } of this.series) {
      buckets.counts.fill(0);
      buckets.sum = 0;
      buckets.count = 0;
    }
  }
}
