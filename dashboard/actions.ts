/**
 * The dashboard's actions (POST, JSON bodies): send, retry, abort, dead letters (redrive / delete: some
 * or all), pause, resume, purge (confirmed by repeating the group name). Each is logged with who
 * did it and what came of it.
 */
import type { Client } from '../src/client.js';
import type { Logger } from '../src/logger.js';
import type { SendOptions } from '../src/options.js';
import { DashboardError, str, strList } from './http.js';
import type { WireActionResult } from './wire.js';

/** Names of the actions (the path after `api/`). */
export const ACTIONS = ['send', 'retry', 'abort', 'dead/redrive', 'dead/delete', 'pause', 'resume', 'purge'] as const;
/** One action's name. */
export type ActionName = (typeof ACTIONS)[number];

/** Whether `path` names an action. */
export function isAction(path: string): path is ActionName {
  return (ACTIONS as readonly string[]).includes(path);
}

/** Ids or `all: true`, not both. */
function target(body: Record<string, unknown>): string[] | undefined {
  const ids = strList(body.ids, 'ids');
  if (body.all === true) {
    if (ids !== undefined) throw new DashboardError(400, 'ERR_DASHBOARD_REQUEST', 'give ids or all: true, not both');
    return undefined;
  }
  if (ids === undefined || ids.length === 0) throw new DashboardError(400, 'ERR_DASHBOARD_REQUEST', 'give ids (a non-empty list) or all: true');
  return ids;
}

/** Runs an action; resolves with what to tell the user. */
export async function runAction(client: Client, name: ActionName, body: Record<string, unknown>): Promise<WireActionResult> {
  switch (name) {
    case 'send': {
      const group = str(body.group, 'group');
      const task = str(body.name, 'name');
      const args = body.args ?? [];
      if (!Array.isArray(args)) throw new DashboardError(400, 'ERR_DASHBOARD_REQUEST', 'args must be a JSON array');
      const o: SendOptions = {};
      if (body.retries !== undefined) o.retryCount = body.retries as number;
      if (body.runAfterMs !== undefined) o.runAfter = body.runAfterMs as number;
      const id = await client.with(o).send(group, task, ...(args as unknown[]));
      return { message: `sent ${group}.${task}: ${id}`, detail: { id } };
    }
    case 'retry': {
      const ids = strList(body.ids, 'ids');
      if (ids === undefined || ids.length === 0) throw new DashboardError(400, 'ERR_DASHBOARD_REQUEST', 'ids is required');
      const report = await client.ops.retry(ids);
      const skipped = report.skipped.map((s) => `${s.id}: ${s.reason}`).join('; ');
      return { message: `${report.retried.length} sent again${skipped === '' ? '' : `, skipped ${skipped}`}`, detail: report };
    }
    case 'abort': {
      const id = str(body.id, 'id');
      const done = await client.abort(id);
      return { message: done ? `${id} aborted` : `${id} not aborted: already finished, or unknown`, detail: { aborted: done } };
    }
    case 'dead/redrive':
    case 'dead/delete': {
      const group = str(body.group, 'group');
      const ids = target(body);
      const n = name === 'dead/redrive' ? await client.redriveDeadLetters(group, ids) : await client.deleteDeadLetters(group, ids);
      return { message: `${n} dead letter(s) ${name === 'dead/redrive' ? 'moved back to' : 'deleted from'} ${group}`, detail: { count: n } };
    }
    case 'pause':
    case 'resume': {
      const group = str(body.group, 'group');
      if (name === 'pause') await client.ops.pause(group);
      else await client.ops.resume(group);
      return { message: name === 'pause' ? `${group} paused: workers start no new task of it (running ones finish)` : `${group} resumed` };
    }
    case 'purge': {
      const group = str(body.group, 'group');
      if (body.confirm !== group) throw new DashboardError(400, 'ERR_DASHBOARD_REQUEST', `purge deletes every queued, delayed and dead message of ${group}: confirm by giving the group name as "confirm"`);
      const before = await client.ops.counts(group);
      await client.ops.purge(group);
      return { message: `${group} purged (${before.ready} ready, ${before.delayed} delayed, ${before.dead} dead removed)`, detail: { ready: before.ready, delayed: before.delayed, dead: before.dead } };
    }
  }
}

/** The audit line of an action. */
export function audit(logger: Logger, who: string, name: ActionName, body: Record<string, unknown>, outcome: string): void {
  const fields: Record<string, unknown> = { who, action: name };
  for (const k of ['group', 'name', 'id', 'ids', 'all'] as const) if (body[k] !== undefined) fields[k] = body[k];
  fields.outcome = outcome;
  logger.info('dashboard action', fields);
}
