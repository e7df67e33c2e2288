/** The overview: every group with counts, hourly charts, paused state and its levers; the workers. */
import { get } from './api.js';
import { actionButton, failure, type App, type View } from './app.js';
import { bars } from './chart.js';
import { ago, h, replace, route, table } from './dom.js';
import type { WireOverview, WireWorker } from '../wire.js';

const EXTRA_KEY = 'tasuki-dashboard-groups';

/** Groups the user added by name (for backends that cannot list groups). */
function extraGroups(): string[] {
  try {
    const v = JSON.parse(localStorage.getItem(EXTRA_KEY) ?? '[]') as unknown;
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
  } catch {
    return [];
  }
}

const num = (v: number | null | undefined): string => (v === null || v === undefined ? '–' : String(v));
const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);

function groupRow(app: App, g: WireOverview['groups'][number]): HTMLTableRowElement {
  const cell = (col: string, ...c: Array<Node | string>): HTMLTableCellElement => h('td', { 'data-col': col }, ...c);
  const rates = g.rates;
  const failed = g.statuses?.failure ?? null;
  return h(
    'tr',
    { 'data-group': g.group },
    cell('group', h('a', { href: route('tasks', { group: g.group }) }, g.group)),
    cell('ready', String(g.ready)),
    cell('delayed', String(g.delayed)),
    cell('inflight', String(g.inFlight)),
    cell('running', num(g.running)),
    cell('failed', failed === null ? '–' : h('a', { href: route('tasks', { group: g.group, status: 'failure' }) }, String(failed))),
    cell('dead', h('a', { href: route('dead', { group: g.group }) }, String(g.dead))),
    cell('redelivered', num(g.redelivered)),
    cell(
      'throughput',
      rates === null ? '–' : h('span', { class: 'rate' }, bars(rates.success, `${sum(rates.success)} succeeded in the last hour`, 'ok'), ` ${sum(rates.success)}${rates.partial ? '+' : ''}/h`),
    ),
    cell(
      'failures',
      rates === null
        ? '–'
        : h('span', { class: 'rate' }, bars(rates.failure, `${sum(rates.failure)} failed in the last hour`, 'fail'), ` ${failRate(rates.success, rates.failure)}`),
    ),
    cell('state', h('span', { class: g.paused ? 'badge s-paused' : 'badge s-active' }, g.paused ? 'paused' : 'active')),
    h(
      'td',
      { class: 'actions' },
      actionButton(app, g.paused ? 'Resume' : 'Pause', () => void app.run(g.paused ? 'resume' : 'pause', { group: g.group }), { 'data-action': g.paused ? 'resume' : 'pause' }),
      actionButton(app, 'Purge…', () => void purge(app, g.group), { 'data-action': 'purge', class: 'action danger' }),
    ),
  );
}

function failRate(ok: number[], fail: number[]): string {
  const f = sum(fail);
  const total = sum(ok) + f;
  return total === 0 ? '0%' : `${Math.round((f / total) * 1000) / 10}%`;
}

async function purge(app: App, group: string): Promise<void> {
  const typed = window.prompt(`Purge deletes every ready, delayed and dead message of ${group} (task states stay). Type the group name to confirm:`);
  if (typed === null) return;
  await app.run('purge', { group, confirm: typed });
}

/** The workers table. */
export function workersTable(workers: WireWorker[]): HTMLElement {
  if (workers.length === 0) return h('p', { class: 'muted' }, 'No live workers.');
  const now = Date.now();
  const rows = workers.map((w) =>
    h(
      'tr',
      { 'data-worker': w.id },
      h('td', {}, w.id),
      h('td', {}, w.host),
      h('td', {}, String(w.pid)),
      h('td', {}, w.groups.map((g) => `${g.group} (${g.running}/${g.concurrency}${g.paused ? ', paused' : ''})`).join(', ')),
      h('td', { 'data-col': 'running' }, String(w.groups.reduce((a, g) => a + g.running, 0))),
      h('td', {}, String(w.succeeded)),
      h('td', {}, String(w.failed)),
      h('td', {}, String(w.retried)),
      h('td', {}, ago(w.startedAt, now).replace(' ago', '')),
      h('td', {}, ago(w.heartbeatAt, now)),
      h('td', {}, w.version),
    ),
  );
  return table(['Worker', 'Host', 'PID', 'Groups (running/concurrency)', 'Running', 'OK', 'Failed', 'Retried', 'Up', 'Last heartbeat', 'Version'], rows, { id: 'workers' });
}

/** The overview page. */
export function overview(app: App): View {
  const body = h('div', { id: 'overview' });
  const add = h('form', { class: 'inline', id: 'add-group' }, h('input', { name: 'group', placeholder: 'group name', 'aria-label': 'group to show' }), h('button', { type: 'submit' }, 'Show group'));
  add.addEventListener('submit', (e) => {
    e.preventDefault();
    const v = (add.elements.namedItem('group') as HTMLInputElement).value.trim();
    if (v !== '') localStorage.setItem(EXTRA_KEY, JSON.stringify([...new Set([...extraGroups(), v])]));
    void view.refresh();
  });
  replace(app.root, h('h1', {}, 'Overview'), body, h('details', { class: 'more' }, h('summary', {}, 'Show a group by name'), add));
  const view: View = {
    async refresh() {
      let data: WireOverview;
      try {
        data = await get<WireOverview>('overview', { group: extraGroups() });
      } catch (err) {
        replace(body, failure(err));
        return;
      }
      const notes = data.notes.map((n) => h('p', { class: 'note' }, n));
      const groups =
        data.groups.length === 0
          ? h('p', { class: 'muted' }, 'No groups known yet.')
          : table(
              ['Group', 'Ready', 'Delayed', 'In flight', 'Running', 'Failed', 'Dead', 'Redelivered', 'Succeeded / h', 'Failure rate', 'State', ''],
              data.groups.map((g) => groupRow(app, g)),
              { id: 'groups' },
            );
      replace(body, ...notes, groups, h('h2', {}, 'Workers'), data.workers === null ? h('p', { class: 'note' }, 'This backend keeps no worker registry.') : workersTable(data.workers));
    },
  };
  return view;
}
