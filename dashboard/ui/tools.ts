/** The group tools under the task list: send a task (JSON arguments), and the watchdog's abnormal-task check on demand. */
import { ApiError, get } from './api.js';
import { failure, type App } from './app.js';
import { badge, flash, h, replace, route, table } from './dom.js';
import type { WireAbnormal } from '../wire.js';

/** "Send a task" (hidden in read-only mode). */
export function sendForm(app: App, group: string): HTMLElement | null {
  if (app.info.readOnly) return null;
  const form = h(
    'form',
    { class: 'filters', id: 'send' },
    h('label', {}, 'Task ', h('input', { name: 'name', required: 'required', placeholder: 'task name' })),
    h('label', {}, 'Arguments (JSON array) ', h('input', { name: 'args', value: '[]', size: 30 })),
    h('label', {}, 'Retries ', h('input', { name: 'retries', type: 'number', min: 0, placeholder: 'default' })),
    h('label', {}, 'Run after (s) ', h('input', { name: 'after', type: 'number', min: 0, placeholder: 'now' })),
    h('button', { type: 'submit', class: 'action' }, 'Send'),
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const v = (n: string): string => (form.elements.namedItem(n) as HTMLInputElement).value.trim();
    let args: unknown;
    try {
      args = JSON.parse(v('args') || '[]');
    } catch {
      flash('Arguments must be JSON, e.g. [1, "text", {"a": 1}]', true);
      return;
    }
    const body: Record<string, unknown> = { group, name: v('name'), args };
    if (v('retries') !== '') body.retries = Number(v('retries'));
    if (v('after') !== '') body.runAfterMs = Number(v('after')) * 1000;
    void app.run('send', body);
  });
  return h('details', { class: 'more' }, h('summary', {}, 'Send a task'), form);
}

/** "Abnormal tasks": not started in time, running too long, redelivered. */
export function abnormalPanel(group: string): HTMLElement {
  const out = h('div', { id: 'abnormal-list' });
  const num = (name: string, value: number): HTMLInputElement => h('input', { name, type: 'number', min: 0, value, size: 6 });
  const form = h(
    'form',
    { class: 'filters', id: 'abnormal' },
    h('label', {}, 'Not started after (s) ', num('sent', 300)),
    h('label', {}, 'Running longer than (s) ', num('running', 1800)),
    h('label', {}, 'Redelivered within (s) ', num('within', 600)),
    h('button', { type: 'submit' }, 'Check'),
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const s = (n: string): number => Number((form.elements.namedItem(n) as HTMLInputElement).value) * 1000;
    void get<WireAbnormal>('abnormal', { group, sentTimeoutMs: s('sent'), runningTimeoutMs: s('running'), withinMs: s('within') })
      .then((r) =>
        replace(
          out,
          r.items.length === 0
            ? h('p', { class: 'muted' }, 'No abnormal tasks.')
            : table(
                ['Kind', 'Id', 'Task', 'Status', 'Deliveries'],
                r.items.map((a) => h('tr', { 'data-task': a.task.id }, h('td', {}, a.kind), h('td', { class: 'id' }, h('a', { href: route('task', { id: a.task.id }) }, a.task.id)), h('td', {}, a.task.name), h('td', {}, badge(a.task.status)), h('td', {}, String(a.task.deliveries ?? 1)))),
              ),
        ),
      )
      .catch((err: unknown) => replace(out, err instanceof ApiError ? failure(err) : h('p', { class: 'error' }, String(err))));
  });
  return h('details', { class: 'more' }, h('summary', {}, 'Abnormal tasks (the watchdog check)'), form, out);
}
