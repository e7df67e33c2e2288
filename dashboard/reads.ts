/**
 * The dashboard's read endpoints (`GET api/…`): info, overview (every group's counts and hourly
 * rates, the workers), tasks (paged, filtered, id search), task (detail), dead (dead letters),
 * abnormal (the watchdog's check on demand).
 * What a backend cannot list comes back as words (`notes`, or an `ERR_UNSUPPORTED` answer).
 */
import type { Client } from '../src/client.js';
import { UnsupportedError } from '../src/errors.js';
import { assertName } from '../src/names.js';
import { TASUKI_VERSION } from '../src/version.js';
import type { Principal } from './auth.js';
import { DashboardError } from './http.js';
import { listDead, listTasks, parseTaskQuery, Rates } from './lists.js';
import { taskDetail } from './detail.js';
import { abnormal } from './abnormal.js';
import type { WireInfo, WireOverview } from './wire.js';

/** Most groups an overview shows. */
const MAX_GROUPS = 200;

/** The read side of one dashboard. */
export class Reads {
  private readonly rates: Rates;

  /** @param client the dashboard's client @param readOnly whether actions are off */
  constructor(
    private readonly client: Client,
    private readonly readOnly: boolean,
  ) {
    this.rates = new Rates(client);
  }

  /** Answers `GET api/<path>`; undefined when there is no such endpoint. */
  async answer(path: string, p: URLSearchParams, who: Principal): Promise<unknown> {
    switch (path) {
      case 'info':
        return { version: TASUKI_VERSION, readOnly: this.readOnly, auth: who.method, who: who.who } satisfies WireInfo;
      case 'overview':
        return this.overview(p.getAll('group'));
      case 'tasks':
        return listTasks(this.client, parseTaskQuery(p));
      case 'task': {
        const id = p.get('id');
        if (id === null || id === '') throw new DashboardError(400, 'ERR_DASHBOARD_REQUEST', 'id is required');
        return taskDetail(this.client, id, p.get('full') === '1');
      }
      case 'abnormal':
        return abnormal(this.client, p);
      case 'dead': {
        const group = p.get('group') ?? '';
        assertName('group', group);
        return listDead(this.client, group, Number(p.get('offset') ?? 0), Number(p.get('limit') ?? 50));
      }
      default:
        return undefined;
    }
  }

  /** Every known group (and the `extra` ones asked for) with counts and rates, and the workers. */
  async overview(extra: string[]): Promise<WireOverview> {
    const notes: string[] = [];
    let names: string[] = [];
    try {
      names = await this.client.ops.groups();
    } catch (err) {
      if (!(err instanceof UnsupportedError)) throw err;
      notes.push(`${err.message}: groups are not listed; add a group by name to see its counts.`);
    }
    names.sort();
    if (names.length > MAX_GROUPS) {
      notes.push(`${names.length} groups are known; the first ${MAX_GROUPS} are shown (add one by name to see it).`);
      names = names.slice(0, MAX_GROUPS);
    }
    for (const g of extra) {
      assertName('group', g);
      if (!names.includes(g)) names.push(g);
    }
    names.sort();
    let workers: WireOverview['workers'] = null;
    try {
      workers = await this.client.ops.workers();
    } catch (err) {
      if (!(err instanceof UnsupportedError)) throw err;
      notes.push(`${err.message}: workers are not shown, and pause / resume are unavailable.`);
    }
    const groups = await Promise.all(
      names.map(async (g) => {
        const c = await this.client.ops.counts(g);
        const rates = c.statuses === null ? null : await this.rates.get(g);
        return { ...c, rates };
      }),
    );
    if (groups.some((g) => g.statuses === null)) {
      notes.push('This backend keeps no task index: task lists, search, status counts and rates are unavailable (queue depths and dead letters still are).');
    }
    return { at: Date.now(), groups, workers, notes };
  }
}
