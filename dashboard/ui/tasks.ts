/** The task list: per group and status, newest first, paged on the server; search by id prefix, name and time range; retry selected; send and the abnormal check below. */
import { get } from './api.js';
import { actionButton, failure, type App, type View } from './app.js';
import { ago, badge, h, replace, route, table } from './dom.js';
import type { WireTaskPage } from '../wire.js';
import { abnormalPanel, sendForm } from './tools.js';

const STATUSES = ['', 'sent', 'running', 'waiting-retry', 'success', 'failure', 'expired', 'aborted'];

/** Epoch ms of a `datetime-local` value (local time), or undefined. */
function epochOf(v: string): string | undefined {
  if (v === '') return undefined;
  const t = new Date(v).getTime();
  return Number.isFinite(t) ? String(t) : undefined;
}

/** A `datetime-local` value of epoch ms. */
function localOf(ms: string | null): string {
  if (ms === null || ms === '') return '';
  const d = new Date(Number(ms));
  const pad = (n: number): string => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** The tasks page for the filters in `params`. */
export function tasks(app: App, params: URLSearchParams): View {
  const group = params.get('group') ?? '';
  const input = (name: string, attrs: Record<string, string> = {}): HTMLInputElement => h('input', { name, id: `f-${name}`, value: params.get(name) ?? '', ...attrs });
  const status = h('select', { name: 'status', id: 'f-status' }, ...STATUSES.map((s) => h('option', { value: s, selected: s === (params.get('status') ?? '') }, s === '' ? 'any status' : s)));
  const since = h('input', { type: 'datetime-local', name: 'since', id: 'f-since', value: localOf(params.get('since')) });
  const until = h('input', { type: 'datetime-local', name: 'until', id: 'f-until', value: localOf(params.get('until')) });
  const form = h(
    'form',
    { class: 'filters', id: 'filters' },
    h('label', {}, 'Group ', input('group', { required: 'required', placeholder: 'group' })),
    h('label', {}, 'Status ', status),
    h('label', {}, 'Task ', input('name', { placeholder: 'task name' })),
    h('label', {}, 'Id ', input('q', { placeholder: 'id or its start' })),
    h('label', {}, 'Updated from ', since),
    h('label', {}, 'to ', until),
    h('button', { type: 'submit' }, 'Search'),
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const v = (n: string): string => (form.elements.namedItem(n) as HTMLInputElement).value.trim();
    location.hash = route('tasks', { group: v('group'), status: status.value, name: v('name'), q: v('q'), since: epochOf(since.value), until: epochOf(until.value) });
  });
  const body = h('div', { id: 'task-list' });
  replace(app.root, h('h1', {}, group === '' ? 'Tasks' : `Tasks of ${group}`), form, body, group === '' ? null : sendForm(app, group), group === '' ? null : abnormalPanel(group));

  const cursors: Array<string | undefined> = [undefined];
  let page = 0;
  // Selections survive the live redraws.
  const chosen = new Set<string>();
  const selected = (): string[] => [...chosen];
  const view: View = {
    async refresh() {
      if (group === '') {
        replace(body, h('p', { class: 'muted' }, 'Choose a group.'));
        return;
      }
      let data: WireTaskPage;
      try {
        data = await get<WireTaskPage>('tasks', {
          group,
          status: params.get('status') ?? undefined,
          name: params.get('name') ?? undefined,
          q: params.get('q') ?? undefined,
          since: params.get('since') ?? undefined,
          until: params.get('until') ?? undefined,
          limit: 50,
          cursor: cursors[page],
        });
      } catch (err) {
        replace(body, failure(err));
        return;
      }
      cursors[page + 1] = data.cursor ?? undefined;
      const rows = data.items.map((t) => {
        const box = h('input', { type: 'checkbox', value: t.id, 'aria-label': `select ${t.id}` });
        box.checked = chosen.has(t.id);
        box.addEventListener('change', () => void (box.checked ? chosen.add(t.id) : chosen.delete(t.id)));
        const tries = `${t.retriesUsed + 1}${(t.deliveries ?? 1) > 1 ? ` (${t.deliveries} deliveries)` : ''}`;
        return h(
          'tr',
          { 'data-task': t.id },
          h('td', {}, app.info.readOnly ? null : box),
          h('td', { class: 'id' }, h('a', { href: route('task', { id: t.id }) }, t.id)),
          h('td', {}, t.name),
          h('td', {}, badge(t.status)),
          h('td', {}, tries),
          h('td', { title: new Date(t.updatedAt).toISOString() }, ago(t.updatedAt)),
          h('td', { class: 'err' }, t.error ?? ''),
        );
      });
      const bar = h(
        'div',
        { class: 'toolbar' },
        actionButton(app, 'Retry selected', () => void app.run('retry', { ids: selected() }), { 'data-action': 'retry-selected' }),
        page > 0 ? h('button', { type: 'button', onclick: () => void ((page -= 1), view.refresh()) }, '← Newer') : null,
        data.cursor !== null ? h('button', { type: 'button', id: 'next-page', onclick: () => void ((page += 1), view.refresh()) }, 'Older →') : null,
        h('span', { class: 'muted' }, `page ${page + 1}${data.scanned === undefined ? '' : `, ${data.scanned} entries searched`}`),
      );
      replace(body, data.items.length === 0 ? h('p', { class: 'muted' }, data.cursor === null ? 'No tasks.' : 'None on this stretch; search older ones.') : table(['', 'Id', 'Task', 'Status', 'Tries', 'Updated', 'Error'], rows, { id: 'tasks' }), bar);
    },
  };
  return view;
}
