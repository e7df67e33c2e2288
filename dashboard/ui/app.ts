/** What every view gets: the server's info, and actions that report back and refresh. */
import { act, ApiError } from './api.js';
import { flash, h } from './dom.js';
import type { WireInfo } from '../wire.js';

/** A page of the dashboard. */
export interface View {
  /** Reads the data again and redraws (one request; the live loop calls it). */
  refresh(): Promise<void>;
}

/** The shared context of the views. */
export interface App {
  /** Server info (read-only mode, who). */
  info: WireInfo;
  /** The element views draw into. */
  root: HTMLElement;
  /** Runs an action (after `confirmText` is confirmed, when given), shows its answer, refreshes the view. */
  run(path: string, body: Record<string, unknown>, confirmText?: string): Promise<boolean>;
}

/** An action button, or nothing in read-only mode. */
export function actionButton(app: App, label: string, onClick: () => void, attrs: Record<string, string> = {}): HTMLButtonElement | null {
  if (app.info.readOnly) return null;
  return h('button', { type: 'button', class: 'action', ...attrs, onclick: () => onClick() }, label);
}

/** Makes the shared context; `current` gives the view to refresh after an action. */
export function makeApp(info: WireInfo, root: HTMLElement, current: () => View | undefined): App {
  return {
    info,
    root,
    async run(path, body, confirmText) {
      if (confirmText !== undefined && !window.confirm(confirmText)) return false;
      try {
        const r = await act(path, body);
        flash(r.message);
        await current()?.refresh();
        return true;
      } catch (err) {
        flash(err instanceof ApiError ? `${err.code}: ${err.message}` : String(err), true);
        return false;
      }
    },
  };
}

/** Shows an API failure in place of a view's content (e.g. ERR_UNSUPPORTED: the backend cannot list). */
export function failure(err: unknown): HTMLElement {
  if (err instanceof ApiError) return h('p', { class: err.code === 'ERR_UNSUPPORTED' ? 'note' : 'error', 'data-error': err.code }, `${err.code}: ${err.message}`);
  return h('p', { class: 'error' }, String(err));
}
