/** The task page: state, arguments, result, progress, error with stack, timeline, redeliveries, flow / workflow steps; retry and abort. */
import { get } from './api.js';
import { actionButton, failure, type App, type View } from './app.js';
import { badge, h, replace, route, table, when } from './dom.js';
import type { WireTask, WireValue } from '../wire.js';

const FINAL = ['success', 'failure', 'expired', 'aborted'];

/** A value block: pretty JSON as text; a cut one offers the rest. */
function valueBlock(label: string, v: WireValue | undefined, showAll: () => void): HTMLElement | null {
  if (v === undefined) return null;
  return h(
    'section',
    { class: 'value', 'data-value': label.toLowerCase() },
    h('h2', {}, label),
    h('pre', {}, v.text),
    v.truncated ? h('p', {}, h('span', { class: 'muted' }, `showing ${v.text.length} of ${v.size} characters `), h('button', { type: 'button', class: 'show-all', onclick: () => showAll() }, 'Show all')) : null,
  );
}

/** The page of task `id`. */
export function task(app: App, id: string): View {
  const body = h('div', { id: 'task' });
  replace(app.root, h('h1', {}, 'Task ', h('code', {}, id)), body);
  let full = false;
  const view: View = {
    async refresh() {
      let t: WireTask;
      try {
        t = await get<WireTask>('task', { id, full: full ? '1' : undefined });
      } catch (err) {
        replace(body, failure(err));
        return;
      }
      if (!t.found) {
        replace(body, h('p', { class: 'note' }, 'Nothing is stored for this id (never sent, or its state expired).'));
        return;
      }
      const s = t.state;
      const showAll = (): void => void ((full = true), view.refresh());
      const facts: Array<[string, Node | string]> = [];
      if (s !== undefined) {
        facts.push(['group', h('a', { href: route('tasks', { group: s.group }) }, s.group)], ['task', s.name], ['status', badge(s.status)]);
        facts.push(['retries', `${s.retriesUsed} used, ${s.retriesLeft} left`], ['redeliveries', String(t.redeliveries)]);
        facts.push(['sent', when(s.sentAt)], ['started', when(s.startedAt)], ['finished', when(s.finishedAt)], ['updated', when(s.updatedAt)]);
        if (s.retryAt !== undefined) facts.push([s.status === 'sent' ? 'due' : 'retry at', when(s.retryAt)]);
      }
      const final = s !== undefined && FINAL.includes(s.status);
      const actions = h(
        'div',
        { class: 'toolbar' },
        t.retryable ? actionButton(app, 'Retry', () => void app.run('retry', { ids: [id] }), { 'data-action': 'retry' }) : null,
        s !== undefined && !final ? actionButton(app, 'Abort', () => void app.run('abort', { id }, `Abort task ${id}?`), { 'data-action': 'abort', class: 'action danger' }) : null,
      );
      const err = s?.error;
      replace(
        body,
        h('dl', { class: 'facts' }, ...facts.flatMap(([k, v]) => [h('dt', {}, k), h('dd', { 'data-fact': k }, v)])),
        actions,
        err === undefined
          ? null
          : h('section', { class: 'error-box', id: 'task-error' }, h('h2', {}, 'Error'), h('p', {}, `${err.name}${err.code === undefined ? '' : ` [${err.code}]`}: ${err.message}`), err.stack === undefined ? null : h('pre', { class: 'stack' }, err.stack)),
        valueBlock('Arguments', t.args, showAll),
        valueBlock('Result', t.value, showAll),
        valueBlock('Progress', t.progress, showAll),
        t.args === undefined && s !== undefined ? h('p', { class: 'muted' }, 'Arguments are stored only with a failed, expired or aborted task (its message, kept for retry).') : null,
        t.steps === undefined
          ? null
          : h(
              'section',
              { id: 'steps' },
              h('h2', {}, t.steps.kind === 'flow' ? 'Flow steps' : 'Workflow steps'),
              table(
                ['Key', 'Name', 'Kind', 'Status', 'Attempts', 'Task', 'Error'],
                t.steps.items.map((st) =>
                  h('tr', {}, h('td', {}, st.key), h('td', {}, st.name), h('td', {}, st.kind), h('td', {}, badge(st.status)), h('td', {}, String(st.attempts)), h('td', {}, st.id === undefined ? '' : h('a', { href: route('task', { id: st.id }) }, st.id)), h('td', {}, st.error ?? '')),
                ),
              ),
            ),
        h('section', { id: 'timeline' }, h('h2', {}, 'Timeline'), h('ol', {}, ...t.timeline.map((e) => h('li', {}, h('time', {}, new Date(e.at).toISOString()), ' ', e.what)))),
      );
    },
  };
  return view;
}
