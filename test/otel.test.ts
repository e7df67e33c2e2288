/**
 * `tasuki/otel`: spans checked with the SDK's in-memory exporter — the send span (PRODUCER, child of
 * the caller's span) injects its context into the message; the process span (CONSUMER, a new trace)
 * links to it, is active inside the handler (a user span nests under it), and carries the settle
 * events (ack, retry, dead_letter) and the messaging attributes. Also the wire field's decoding.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, context, propagation, trace, type Context, type ContextManager } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { Server, silentLogger, decodeMessage, encodeMessage, type TaskMessage } from '../src/index.js';
import { TasukiTracing, ATTR } from '../otel/index.js';
import { until } from './core/suite.js';

/** A context manager on AsyncLocalStorage (what an application's SDK registers, e.g. NodeSDK). */
class AlsContextManager implements ContextManager {
  private readonly als = new AsyncLocalStorage<Context>();
  active(): Context {
    return this.als.getStore() ?? ROOT_CONTEXT;
  }
  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(ctx: Context, fn: F, thisArg?: ThisParameterType<F>, ...args: A): ReturnType<F> {
    return this.als.run(ctx, () => fn.call(thisArg, ...args));
  }
  bind<T>(ctx: Context, target: T): T {
    if (typeof target !== 'function') return target;
    const f = target as unknown as (...a: unknown[]) => unknown;
    return ((...a: unknown[]) => this.with(ctx, () => f(...a))) as unknown as T;
  }
  enable(): this {
    return this;
  }
  disable(): this {
    this.als.disable();
    return this;
  }
}

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const userTracer = provider.getTracer('app');

beforeAll(() => {
  context.setGlobalContextManager(new AlsContextManager());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
});
afterAll(async () => {
  context.disable();
  propagation.disable();
  await provider.shutdown();
});

const spans = (): ReadableSpan[] => exporter.getFinishedSpans();
const byId = (id: string): ReadableSpan[] => spans().filter((s) => s.attributes[ATTR.messageId] === id);

describe('tasuki/otel', () => {
  it('send (PRODUCER) → message trace field → process (CONSUMER, linked), user span nested, ack event, attributes', async () => {
    exporter.reset();
    const group = `o-${randomUUID().slice(0, 8)}`;
    const server = new Server({ logger: silentLogger, instrumentation: new TasukiTracing({ tracerProvider: provider }) });
    const seen: Array<TaskMessage['trace']> = [];
    const origPublish = server.broker.publish.bind(server.broker);
    server.broker.publish = (g, body, o) => {
      seen.push((JSON.parse(body) as TaskMessage).trace);
      return origPublish(g, body, o);
    };
    const work = server.add(group, 'work', async (x: number) => {
      await new Promise((r) => setTimeout(r, 5));
      // After an await: the process span is still the active context.
      const inner = userTracer.startSpan('db query');
      inner.end();
      return x + 1;
    });
    await server.run(group, 2);
    const client = server.client();
    const request = userTracer.startSpan('http request');
    const id = await context.with(trace.setSpan(context.active(), request), () => client.send(work, 1));
    request.end();
    expect((await client.getResult(id, 10_000)).value).toBe(2);
    await until(() => (byId(id).some((s) => s.kind === SpanKind.CONSUMER) ? true : null), 10_000, 'process span ended');

    const send = byId(id).find((s) => s.kind === SpanKind.PRODUCER) as ReadableSpan;
    const proc = byId(id).find((s) => s.kind === SpanKind.CONSUMER) as ReadableSpan;
    const req = spans().find((s) => s.name === 'http request') as ReadableSpan;
    const db = spans().find((s) => s.name === 'db query') as ReadableSpan;
    expect(send.name).toBe(`send ${group}`);
    expect(send.parentSpanContext?.spanId).toBe(req.spanContext().spanId);
    expect(send.spanContext().traceId).toBe(req.spanContext().traceId);
    expect(send.attributes).toMatchObject({
      'messaging.system': 'tasuki',
      'messaging.destination.name': group,
      'messaging.message.id': id,
      'messaging.operation.type': 'send',
      'messaging.operation.name': 'send',
      'messaging.tasuki.task.name': 'work',
    });
    // The message carried the send span's context (W3C traceparent).
    expect(seen[0]?.traceparent).toContain(send.spanContext().spanId);

    expect(proc.name).toBe(`process ${group}`);
    expect(proc.parentSpanContext).toBeUndefined();
    expect(proc.spanContext().traceId).not.toBe(send.spanContext().traceId);
    expect(proc.links.map((l) => l.context.spanId)).toEqual([send.spanContext().spanId]);
    expect(proc.attributes).toMatchObject({
      'messaging.system': 'tasuki',
      'messaging.destination.name': group,
      'messaging.message.id': id,
      'messaging.operation.type': 'process',
      'messaging.operation.name': 'process',
    });
    expect(proc.events.map((e) => [e.name, e.attributes?.[ATTR.operationType], e.attributes?.[ATTR.operationName]])).toEqual([['ack', 'settle', 'ack']]);
    expect(proc.status.code).not.toBe(SpanStatusCode.ERROR);

    expect(db.parentSpanContext?.spanId).toBe(proc.spanContext().spanId);
    expect(db.spanContext().traceId).toBe(proc.spanContext().traceId);
    await server.shutdown(5000);
  });

  it('a retried task: two process spans linked to the one send span; the failed run has status error and a retry event; bad arguments end in dead_letter', async () => {
    exporter.reset();
    const group = `o-${randomUUID().slice(0, 8)}`;
    const server = new Server({ logger: silentLogger, instrumentation: [new TasukiTracing({ tracerProvider: provider })] });
    let runs = 0;
    const flaky = server.add(group, 'flaky', () => {
      if (++runs === 1) throw new Error('first run fails');
      return runs;
    });
    server.add(group, 'typed', (a: number) => a, { args: ['number'] });
    await server.run(group, 1);
    const client = server.client().with({ retryCount: 1, backoff: { type: 'fixed', delayMs: 0 } });
    const id = await client.send(flaky);
    expect((await client.getResult(id, 10_000)).value).toBe(2);
    const bad = await client.send(group, 'typed', 'nope');
    await client.getResult(bad, 10_000);
    await until(() => (byId(id).filter((s) => s.kind === SpanKind.CONSUMER).length === 2 && byId(bad).some((s) => s.kind === SpanKind.CONSUMER) ? true : null), 10_000, 'process spans ended');

    const send = byId(id).find((s) => s.kind === SpanKind.PRODUCER) as ReadableSpan;
    const [first, second] = byId(id).filter((s) => s.kind === SpanKind.CONSUMER) as [ReadableSpan, ReadableSpan];
    for (const p of [first, second]) expect(p.links.map((l) => l.context.spanId)).toEqual([send.spanContext().spanId]);
    expect(first.status).toMatchObject({ code: SpanStatusCode.ERROR, message: 'first run fails' });
    expect(first.events.map((e) => e.name)).toEqual(['exception', 'retry']);
    expect(first.attributes[ATTR.retriesUsed]).toBe(0);
    expect(second.events.map((e) => e.name)).toEqual(['ack']);
    expect(second.attributes[ATTR.retriesUsed]).toBe(1);

    const dead = byId(bad).find((s) => s.kind === SpanKind.CONSUMER) as ReadableSpan;
    expect(dead.status.code).toBe(SpanStatusCode.ERROR);
    expect(dead.events.map((e) => e.name)).toEqual(['exception', 'dead_letter']);
    await server.shutdown(5000);
  });

  it('a message without a trace field (another producer) gets a process span without links', async () => {
    exporter.reset();
    const group = `o-${randomUUID().slice(0, 8)}`;
    const server = new Server({ logger: silentLogger, instrumentation: new TasukiTracing({ tracerProvider: provider }) });
    server.add(group, 'plain', () => 1);
    await server.run(group, 1);
    const id = randomUUID();
    await server.broker.publish(group, JSON.stringify({ v: 1, id, group, name: 'plain', args: { json: [] } }));
    await until(() => (byId(id).length === 1 ? true : null), 10_000, 'process span ended');
    expect(byId(id)[0]?.links).toEqual([]);
    await server.shutdown(5000);
  });

  it('the trace wire field: carried through decode and encode; a malformed one is dropped, never a decode failure', () => {
    const base = { v: 1, id: 'x', group: 'g', name: 'n', args: { json: [] } };
    const tp = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const msg = decodeMessage(JSON.stringify({ ...base, trace: { traceparent: tp } }));
    expect(msg.trace).toEqual({ traceparent: tp });
    expect((JSON.parse(encodeMessage(msg)) as TaskMessage).trace).toEqual({ traceparent: tp });
    for (const trace of ['text', [tp], { traceparent: 1 }, { 'bad key': 'x' }, { __proto__x: 'y'.repeat(600) }, Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`k${i}`, 'v']))]) {
      expect(decodeMessage(JSON.stringify({ ...base, trace })).trace).toBeUndefined();
    }
    expect(decodeMessage(JSON.stringify(base)).trace).toBeUndefined();
    expect('trace' in decodeMessage(JSON.stringify(base))).toBe(false);
  });
});
