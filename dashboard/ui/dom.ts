/**
 * Building the page: elements from tags, attributes and children, where every string child becomes
 * a text node — data is never parsed as HTML (no innerHTML anywhere in the UI).
 */

/** A child: a node, text (shown as text), or nothing. */
export type Child = Node | string | number | null | undefined | false;

/** Attributes: strings set as attributes, `on*` functions as listeners, booleans as presence. */
export type Attrs = Record<string, string | number | boolean | EventListener | undefined>;

/** Makes an element. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (typeof v === 'function') el.addEventListener(k.slice(2).toLowerCase(), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

/** Appends children (strings as text nodes). */
export function append(el: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
}

/** Replaces an element's children. */
export function replace(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

/** A link inside the dashboard (`#/route?params`). */
export function route(path: string, params: Record<string, string | undefined> = {}): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') q.set(k, v);
  const s = q.toString();
  return `#/${path}${s === '' ? '' : `?${s}`}`;
}

/** "3s ago", "5m ago", "2h ago". */
export function ago(at: number, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - at) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86_400)}d ago`;
}

/** ISO time with "ago". */
export function when(at: number | undefined): string {
  return at === undefined ? '-' : `${new Date(at).toISOString()} (${ago(at)})`;
}

/** A status badge. */
export function badge(status: string): HTMLElement {
  return h('span', { class: `badge s-${status.replace(/[^a-z-]/g, '')}` }, status);
}

/** A table from a header and rows. */
export function table(head: string[], rows: HTMLTableRowElement[], attrs: Attrs = {}): HTMLTableElement {
  return h('table', attrs, h('thead', {}, h('tr', {}, ...head.map((t) => h('th', {}, t)))), h('tbody', {}, ...rows));
}

/** A message line in the flash area (an error in red). */
export function flash(text: string, error = false): void {
  const el = document.getElementById('flash');
  if (el === null) return;
  replace(el, h('p', { class: error ? 'flash error' : 'flash' }, text));
}
