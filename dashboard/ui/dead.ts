/** Dead letters of a group: paged, with redrive / delete of one, the selected ones, or all. */
import { get } from './api.js';
import { actionButton, failure, type App, type View } from './app.js';
import { ago, h, replace, route, table } from './dom.js';
import type { WireDeadPage } from '../wire.js';

/** The dead-letter page of `group`. */
export function dead(app: App, group: string): View {
  const form = h('form', { class: 'filters' }, h('label', {}, 'Group ', h('input', { name: 'group', id: 'd-group', value: group, required: 'required' })), h('button', { type: 'submit' }, 'Show'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    location.hash = route('dead', { group: (form.elements.namedItem('group') as HTMLInputElement).value.trim() });
  });
  const body = h('div', { id: 'dead-list' });
  replace(app.root, h('h1', {}, group === '' ? 'Dead letters' : `Dead letters of ${group}`), form, body);
  let offset = 0;
  // Selections survive the live redraws.
  const chosen = new Set<string>();
  const selected = (): string[] => [...chosen];
  const view: View = {
    async refresh() {
      if (group === '') {
        replace(body, h('p', { class: 'muted' }, 'Choose a group.'));
        return;
      }
      let data: WireDeadPage;
      try {
        data = await get<WireDeadPage>('dead', { group, offset, limit: 50 });
      } catch (err) {
        replace(body, failure(err));
        return;
      }
      const rows = data.items.map((d) => {
        const box = h('input', { type: 'checkbox', value: d.id, 'aria-label': `select dead letter ${d.id}` });
        box.checked = chosen.has(d.id);
        box.addEventListener('change', () => void (box.checked ? chosen.add(d.id) : chosen.delete(d.id)));
        return h(
          'tr',
          { 'data-dead': d.id, 'data-task': d.task ?? '' },
          h('td', {}, app.info.readOnly ? null : box),
          h('td', {}, d.id),
          h('td', { class: 'id' }, d.task === undefined ? '-' : h('a', { href: route('task', { id: d.task }) }, d.task)),
          h('td', {}, d.name ?? '-'),
          h('td', { class: 'err' }, d.reason),
          h('td', {}, ago(d.at)),
          h(
            'td',
            { class: 'actions' },
            actionButton(app, 'Redrive', () => void app.run('dead/redrive', { group, ids: [d.id] }), { 'data-action': 'redrive' }),
            actionButton(app, 'Delete', () => void app.run('dead/delete', { group, ids: [d.id] }, `Delete dead letter ${d.id}?`), { 'data-action': 'delete', class: 'action danger' }),
          ),
        );
      });
      const bar = h(
        'div',
        { class: 'toolbar' },
        actionButton(app, 'Redrive selected', () => void app.run('dead/redrive', { group, ids: selected() }), { 'data-action': 'redrive-selected' }),
        actionButton(app, 'Delete selected', () => void app.run('dead/delete', { group, ids: selected() }, 'Delete the selected dead letters?'), { 'data-action': 'delete-selected', class: 'action danger' }),
        actionButton(app, 'Redrive all', () => void app.run('dead/redrive', { group, all: true }, `Move every dead letter of ${group} back to its queue?`), { 'data-action': 'redrive-all' }),
        actionButton(app, 'Delete all', () => void app.run('dead/delete', { group, all: true }, `Delete every dead letter of ${group}?`), { 'data-action': 'delete-all', class: 'action danger' }),
        offset > 0 ? h('button', { type: 'button', onclick: () => void ((offset = Math.max(0, offset - 50)), view.refresh()) }, '← Previous') : null,
        data.next !== null ? h('button', { type: 'button', onclick: () => void ((offset = data.next ?? offset), view.refresh()) }, 'Next →') : null,
      );
      replace(body, data.items.length === 0 ? h('p', { class: 'muted' }, 'No dead letters.') : table(['', 'Dead letter', 'Task', 'Name', 'Reason', 'At', ''], rows, { id: 'dead' }), bar);
    },
  };
  return view;
}
