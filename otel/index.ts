/**
 * `tasuki/otel`: OpenTelemetry traces of tasuki, per the messaging semantic conventions, on
 * `@opentelemetry/api` (an optional peer dependency: only this module loads it; importing `tasuki`
 * never does). The SDK, exporter, propagator and context manager are the application's (e.g.
 * `NodeSDK`); without them every span is a no-op.
 *
 * - `send {group}` (PRODUCER), child of the context active at `client.send`: its context is injected
 *   into the message's optional `trace` field through the global propagator (W3C `traceparent`).
 * - `process {group}` (CONSUMER), a new trace per run, **linked** to the producer span; the handler
 *   runs with it active, so spans the handler creates are its children. Its events record how the
 *   delivery was settled: `ack`, `retry`, `dead_letter`.
 *
 * ```ts
 * import { Server } from 'tasuki';
 * import { TasukiTracing } from 'tasuki/otel';
 * const server = new Server({ instrumentation: new TasukiTracing() });
 * ```
 */
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  context,
  propagation,
  trace,
  type Attributes,
  type Link,
  type Span,
  type TextMapPropagator,
  type Tracer,
  type TracerProvider,
} from '@opentelemetry/api';
import type { Instrumentation, ProcessScope, SendDone, SettleKind } from '../src/instrumentation.js';
import type { TaskMessage } from '../src/message.js';

/** The instrumentation scope name of tasuki's tracer. */
export const TRACER_NAME = 'tasuki';

/** The semantic-convention attribute names used. */
export const ATTR = Object.freeze({
  system: 'messaging.system',
  destination: 'messaging.destination.name',
  messageId: 'messaging.message.id',
  operationType: 'messaging.operation.type',
  operationName: 'messaging.operation.name',
  /** tasuki-specific: the task name within its group. */
  taskName: 'messaging.tasuki.task.name',
  /** tasuki-specific: retries used before this run. */
  retriesUsed: 'messaging.tasuki.retries_used',
});

/** `messaging.system` of every span. */
export const MESSAGING_SYSTEM = 'tasuki';

/** Span event names of the settle operations (`messaging.operation.name` of each event). */
export const SETTLE_EVENTS: Readonly<Record<SettleKind, string>> = Object.freeze({ ack: 'ack', retry: 'retry', deadLetter: 'dead_letter' });

/** Options of {@link TasukiTracing}. */
export interface TracingOptions {
  /** Where spans go (default: the global tracer provider, `trace.getTracerProvider()`). */
  tracerProvider?: TracerProvider;
  /** How the context travels in the message's `trace` field (default: the global propagator). */
  propagator?: TextMapPropagator;
}

/**
 * OpenTelemetry tracing as an {@link Instrumentation}: pass it as the `instrumentation` option of a
 * `Server` (process spans) and of a `Client` (send spans); a server's `client()` uses the server's.
 */
export class TasukiTracing implements Instrumentation {
  private readonly tracer: Tracer;
  private readonly propagator: TextMapPropagator | undefined;

  /** @param options tracer provider and propagator (defaults: the global ones) */
  constructor(options: TracingOptions = {}) {
    this.tracer = (options.tracerProvider ?? trace.getTracerProvider()).getTracer(TRACER_NAME);
    this.propagator = options.propagator;
  }

  /** @inheritdoc — starts the `send` span and injects its context into `msg.trace`. */
  send(msg: TaskMessage): SendDone | undefined {
    const span = this.tracer.startSpan(
      `send ${msg.group}`,
      { kind: SpanKind.PRODUCER, attributes: { ...base(msg), [ATTR.operationType]: 'send', [ATTR.operationName]: 'send' } },
      context.active(),
    );
    const carrier: Record<string, string> = {};
    const ctx = trace.setSpan(context.active(), span);
    if (this.propagator === undefined) propagation.inject(ctx, carrier);
    else this.propagator.inject(ctx, carrier, { set: (c: Record<string, string>, k, v) => void (c[k] = v) });
    if (Object.keys(carrier).length > 0) msg.trace = carrier;
    return (error) => {
      if (error !== undefined) fail(span, error);
      span.end();
    };
  }

  /** @inheritdoc — starts the `process` span (linked to the producer), active while the handler runs. */
  process(msg: TaskMessage): ProcessScope | undefined {
    const links: Link[] = [];
    if (msg.trace !== undefined) {
      const carrier = msg.trace;
      const extracted =
        this.propagator === undefined
          ? propagation.extract(ROOT_CONTEXT, carrier)
          : this.propagator.extract(ROOT_CONTEXT, carrier, { get: (c: Record<string, string>, k) => c[k], keys: (c: Record<string, string>) => Object.keys(c) });
      const producer = trace.getSpanContext(extracted);
      if (producer !== undefined && trace.isSpanContextValid(producer)) links.push({ context: producer });
    }
    const span = this.tracer.startSpan(
      `process ${msg.group}`,
      { kind: SpanKind.CONSUMER, links, attributes: { ...base(msg), [ATTR.operationType]: 'process', [ATTR.operationName]: 'process', [ATTR.retriesUsed]: msg.retriesUsed } },
      ROOT_CONTEXT,
    );
    const active = trace.setSpan(ROOT_CONTEXT, span);
    return {
      run: (fn) => context.with(active, fn),
      ran: (error) => {
        if (error !== undefined) fail(span, error);
      },
      settled: (how) => {
        const name = SETTLE_EVENTS[how];
        span.addEvent(name, { [ATTR.operationType]: 'settle', [ATTR.operationName]: name });
      },
      end: () => span.end(),
    };
  }
}

/** Attributes every span of `msg` has. */
function base(msg: TaskMessage): Attributes {
  return { [ATTR.system]: MESSAGING_SYSTEM, [ATTR.destination]: msg.group, [ATTR.messageId]: msg.id, [ATTR.taskName]: msg.name };
}

/** Marks a span failed with `error`. */
function fail(span: Span, error: Error): void {
  span.recordException(error);
  span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
}
