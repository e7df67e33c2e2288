/**
 * The dashboard in the browser: reads who it is and whether actions are on, routes `#/…` to a
 * view, and keeps the view live — one request every two seconds at most, none while the tab is
 * hidden or the previous one is still out.
 */
import { get } from './api.js';
import { failure, makeApp, type View } from './app.js';
import { dead } from './dead.js';
import { h, replace, route } from './dom.js';
import { overview } from './overview.js';
import { task } from './task.js';
import { tasks } from './tasks.js';
import type { WireInfo } from '../wire.js';

/** Time between live refreshes (the issue allows one request per second per page at most). */
const LIVE_MS = 2000;

async function start(): Promise<void> {
  const root = document.getElementById('view') as HTMLElement;
  let info: WireInfo;
  try {
    info = await get<WireInfo>('info');
  } catch (err) {
    replace(root, failure(err));
    return;
  }
  let current: View | undefined;
  const app = makeApp(info, root, () => current);
  replace(document.getElementById('who') as HTMLElement, `${info.who}${info.readOnly ? ' · read-only' : ''}`);
  if (info.readOnly) document.body.classList.add('read-only');
  if (info.auth === 'token') (document.getElementById('logout') as HTMLElement).hidden = false;
  const gotoForm = document.getElementById('goto') as HTMLFormElement;
  gotoForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const id = (document.getElementById('goto-id') as HTMLInputElement).value.trim();
    if (id !== '') location.hash = route('task', { id });
  });

  const show = (): void => {
    const hash = location.hash.replace(/^#\/?/, '');
    const q = hash.indexOf('?');
    const name = q < 0 ? hash : hash.slice(0, q);
    const params = new URLSearchParams(q < 0 ? '' : hash.slice(q + 1));
    for (const a of document.querySelectorAll<HTMLAnchorElement>('nav a')) a.classList.toggle('current', a.dataset.nav === (name === '' ? 'overview' : name === 'task' ? 'tasks' : name));
    if (name === 'tasks') current = tasks(app, params);
    else if (name === 'task') current = task(app, params.get('id') ?? '');
    else if (name === 'dead') current = dead(app, params.get('group') ?? '');
    else if (name === '') current = overview(app);
    else {
      current = undefined;
      replace(root, h('p', { class: 'error' }, 'No such page.'));
    }
    void refresh(true);
  };

  let inFlight = false;
  let timer: number | undefined;
  const refresh = async (force = false): Promise<void> => {
    window.clearTimeout(timer);
    if ((force || !inFlight) && current !== undefined) {
      inFlight = true;
      const view = current;
      try {
        await view.refresh();
      } finally {
        inFlight = false;
      }
    }
    timer = window.setTimeout(tick, LIVE_MS);
  };
  const tick = (): void => {
    if (document.hidden) timer = window.setTimeout(tick, LIVE_MS);
    else void refresh();
  };
  window.addEventListener('hashchange', show);
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) void refresh();
  });
  show();
}

void start();
