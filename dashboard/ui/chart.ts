/** Small bar charts (SVG built element by element) of per-minute counts. */

const NS = 'http://www.w3.org/2000/svg';

/** A bar chart of `values` (oldest first), `label` as its accessible name and tooltip. */
export function bars(values: number[], label: string, kind: 'ok' | 'fail'): SVGSVGElement {
  const w = 120;
  const hgt = 24;
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', `0 0 ${w} ${hgt}`);
  svg.setAttribute('width', String(w));
  svg.setAttribute('height', String(hgt));
  svg.setAttribute('class', `chart ${kind}`);
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', label);
  const title = document.createElementNS(NS, 'title');
  title.textContent = label;
  svg.appendChild(title);
  const max = Math.max(1, ...values);
  const bw = w / Math.max(1, values.length);
  values.forEach((v, i) => {
    if (v === 0) return;
    const bh = Math.max(1, Math.round((v / max) * (hgt - 1)));
    const r = document.createElementNS(NS, 'rect');
    r.setAttribute('x', (i * bw).toFixed(2));
    r.setAttribute('y', String(hgt - bh));
    r.setAttribute('width', Math.max(1, bw - 0.5).toFixed(2));
    r.setAttribute('height', String(bh));
    svg.appendChild(r);
  });
  return svg;
}
