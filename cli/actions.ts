/** The commands of `tasuki` that change things: send, abort, retry, dlq, pause, resume, purge. */
import type { Client } from '../src/client.js';
import { decodeMessage } from '../src/message.js';
import type { SendOptions } from '../src/options.js';
import { CommandFailed, parseDuration, table, UsageError, ago, type Output } from './format.js';

/** Flags of `tasuki send`. */
export interface SendFlags {
  wait?: string | boolean;
  runAfter?: string;
  retries?: string;
  id?: string;
  timeout?: string;
}

/** Parses each argument as JSON (`1`, `"text"`, `{"a":1}`). */
export function parseArgs(args: string[]): unknown[] {
  return args.map((a, i) => {
    try {
      return JSON.parse(a) as unknown;
    } catch {
      throw new UsageError(`argument ${i + 1} is not JSON: ${JSON.stringify(a.slice(0, 80))} (quote strings: '"text"')`);
    }
  });
}

/** `tasuki send <group> <name> [args...]`. */
export async function send(client: Client, out: Output, group: string, name: string, rawArgs: string[], f: SendFlags): Promise<void> {
  const args = parseArgs(rawArgs);
  const o: SendOptions = {};
  if (f.runAfter !== undefined) o.runAfter = parseDuration(f.runAfter, '--run-after');
  if (f.retries !== undefined) {
    o.retryCount = Number(f.retries);
    if (!Number.isInteger(o.retryCount) || o.retryCount < 0) throw new UsageError('--retries must be a whole number ≥ 0');
  }
  if (f.id !== undefined) o.id = f.id;
  if (f.timeout !== undefined) o.timeout = parseDuration(f.timeout, '--timeout');
  const id = await client.with(o).send(group, name, ...args);
  if (f.wait === undefined || f.wait === false) {
    out.line(out.json ? JSON.stringify({ id }) : id);
    return;
  }
  const waitMs = f.wait === true ? 60_000 : parseDuration(f.wait, '--wait');
  const r = await client.getResult(id, waitMs + (o.runAfter ?? 0));
  if (out.json) out.line(JSON.stringify({ id, status: r.status, value: r.hasValue() ? r.value : null, error: r.state?.error ?? null }));
  else if (r.isSuccess()) out.line(`${id} ${out.paint('green', 'success')} ${JSON.stringify(r.value) ?? 'undefined'}`);
  else out.line(`${id} ${out.paint('red', r.status)} ${r.state?.error?.message ?? ''}`.trimEnd());
  if (!r.isSuccess()) throw new CommandFailed(`task ${id} ended ${r.status}`);
}

/** `tasuki abort <id>`. */
export async function abort(client: Client, out: Output, id: string): Promise<void> {
  const done = await client.abort(id);
  if (out.json) out.line(JSON.stringify({ id, aborted: done }));
  else out.line(done ? `${id} aborted` : `${id} not aborted: already finished, or unknown`);
  if (!done) throw new CommandFailed(`task ${id} was not aborted`);
}

/** `tasuki retry <id...>`. */
export async function retry(client: Client, out: Output, ids: string[]): Promise<void> {
  const report = await client.ops.retry(ids);
  if (out.json) out.line(JSON.stringify(report));
  else {
    for (const id of report.retried) out.line(`${id} ${out.paint('green', 'sent again')}`);
    for (const s of report.skipped) out.line(`${s.id} ${out.paint('yellow', 'skipped')}: ${s.reason}`);
  }
  if (report.retried.length === 0) throw new CommandFailed('nothing was retried');
}

/** `tasuki dlq ls <group>`. */
export async function dlqList(client: Client, out: Output, group: string, f: { limit?: string; offset?: string }): Promise<void> {
  const limit = f.limit === undefined ? 50 : Number(f.limit);
  const offset = f.offset === undefined ? 0 : Number(f.offset);
  if (!Number.isInteger(limit) || limit < 1 || !Number.isInteger(offset) || offset < 0) throw new UsageError('--limit must be ≥ 1 and --offset ≥ 0 (whole numbers)');
  const list = await client.deadLetters(group, { offset, limit });
  if (out.json) return out.line(JSON.stringify(list));
  if (list.length === 0) return out.line('no dead letters');
  const rows: string[][] = [['DEAD LETTER', 'TASK', 'NAME', 'REASON', 'AT']];
  for (const d of list) {
    let task = '-';
    let name = '-';
    try {
      const m = decodeMessage(d.body);
      task = m.id;
      name = m.name;
    } catch {
      // an undecodable body: shown by `dlq show`
    }
    rows.push([d.id, task, name, `${d.reason.code}: ${d.reason.message}`.slice(0, 70), ago(d.at)]);
  }
  out.line(table(rows));
}

/** `tasuki dlq show <group> <id>`: a dead letter with its body. */
export async function dlqShow(client: Client, out: Output, group: string, id: string): Promise<void> {
  for (let offset = 0; ; offset += 500) {
    const page = await client.deadLetters(group, { offset, limit: 500 });
    const d = page.find((x) => x.id === id || safeTaskId(x.body) === id);
    if (d !== undefined) {
      if (out.json) return out.line(JSON.stringify(d));
      out.line(table([['dead letter', d.id], ['group', d.group], ['reason', `${d.reason.code}: ${d.reason.message}`], ['at', new Date(d.at).toISOString()]]));
      out.line('body');
      out.line(d.body);
      return;
    }
    if (page.length < 500) throw new CommandFailed(`no dead letter ${id} in ${group}`);
  }
}

function safeTaskId(body: string): string | undefined {
  try {
    return decodeMessage(body).id;
  } catch {
    return undefined;
  }
}

/** `tasuki dlq redrive|rm <group> [ids...] [--all]`. */
export async function dlqMove(client: Client, out: Output, what: 'redrive' | 'rm', group: string, ids: string[], all: boolean): Promise<void> {
  if (ids.length === 0 && !all) throw new UsageError(`give dead letter ids, or --all`);
  if (ids.length > 0 && all) throw new UsageError('give ids or --all, not both');
  const target = all ? undefined : ids;
  const n = what === 'redrive' ? await client.redriveDeadLetters(group, target) : await client.deleteDeadLetters(group, target);
  out.line(out.json ? JSON.stringify({ group, [what === 'redrive' ? 'redriven' : 'deleted']: n }) : `${n} dead letter(s) ${what === 'redrive' ? 'moved back to' : 'deleted from'} ${group}`);
}

/** `tasuki pause|resume <group>`. */
export async function pauseResume(client: Client, out: Output, what: 'pause' | 'resume', group: string): Promise<void> {
  if (what === 'pause') await client.ops.pause(group);
  else await client.ops.resume(group);
  out.line(out.json ? JSON.stringify({ group, paused: what === 'pause' }) : `${group} ${what === 'pause' ? 'paused: workers start no new task of it (running ones finish)' : 'resumed'}`);
}

/** `tasuki purge <group> --yes`. */
export async function purge(client: Client, out: Output, group: string, yes: boolean): Promise<void> {
  if (!yes) throw new UsageError(`purge deletes every queued, delayed and dead message of ${group}: add --yes`);
  const before = await client.ops.counts(group);
  await client.ops.purge(group);
  const removed = before.ready + before.delayed + before.dead;
  out.line(out.json ? JSON.stringify({ group, purged: removed }) : `${group} purged (${before.ready} ready, ${before.delayed} delayed, ${before.dead} dead removed)`);
}
