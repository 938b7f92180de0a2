// A small SVG line chart over the last `windowMs` of samples, and the sample history it draws.

export interface Sample {
  t: number; // ms since epoch
  v: number | null; // null: no value (not publishing)
}

export class History {
  private samples: Sample[] = [];
  constructor(readonly windowMs: number) {}

  add(t: number, v: number | null) {
    this.samples.push({ t, v });
    const from = t - this.windowMs;
    while (this.samples.length > 0 && this.samples[0].t < from) this.samples.shift();
  }

  clear() {
    this.samples = [];
  }

  get points(): readonly Sample[] {
    return this.samples;
  }

  get last(): number | null {
    return this.samples.length ? this.samples[this.samples.length - 1].v : null;
  }
}

const NS = 'http://www.w3.org/2000/svg';

function el<K extends keyof SVGElementTagNameMap>(name: K, attrs: Record<string, string | number>) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

// Draws `history` into `svg`: a polyline per run of non-null values (a dot for a lone value), a y
// axis from 0 to a rounded maximum, and the time axis ending now.
export function drawChart(svg: SVGSVGElement, history: History, now: number, format: (v: number) => string) {
  const width = 320;
  const height = 110;
  const left = 46;
  const bottom = 16;
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.replaceChildren();
  const values = history.points.filter((p) => p.v !== null).map((p) => p.v as number);
  let max = Math.max(1e-9, ...values);
  const magnitude = Math.pow(10, Math.floor(Math.log10(max)));
  max = Math.ceil((max * 1.1) / magnitude) * magnitude;
  // The time axis spans the history kept so far (at least 30 s), up to the whole window.
  const first = history.points.length ? history.points[0].t : now;
  const span = Math.min(history.windowMs, Math.max(30_000, now - first));
  const x = (t: number) => left + ((t - (now - span)) / span) * (width - left - 4);
  const y = (v: number) => 4 + (1 - v / max) * (height - bottom - 8);

  for (const v of [0, max / 2, max]) {
    svg.append(el('line', { x1: left, x2: width - 4, y1: y(v), y2: y(v), class: 'grid' }));
    const label = el('text', { x: left - 4, y: y(v) + 3, 'text-anchor': 'end', class: 'label' });
    label.textContent = format(v);
    svg.append(label);
  }
  const axis = el('text', { x: left, y: height - 3, class: 'label' });
  axis.textContent = span >= 120_000 ? `−${Math.round(span / 60000)} min` : `−${Math.round(span / 1000)} s`;
  svg.append(axis);
  const nowLabel = el('text', { x: width - 4, y: height - 3, 'text-anchor': 'end', class: 'label' });
  nowLabel.textContent = 'now';
  svg.append(nowLabel);

  let run: string[] = [];
  const flush = () => {
    if (run.length > 1) svg.append(el('polyline', { points: run.join(' '), class: 'line' }));
    if (run.length === 1) {
      const [cx, cy] = run[0].split(',');
      svg.append(el('circle', { cx, cy, r: 1.5, class: 'dot' }));
    }
    run = [];
  };
  for (const p of history.points) {
    if (p.v === null) {
      flush();
      continue;
    }
    run.push(`${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`);
  }
  flush();
  svg.dataset.points = String(values.length);
}
