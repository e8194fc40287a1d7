// report.html for a run: one self-contained page (inline SVG charts, no scripts, no CDN)
// of train/eval loss, learning rate, gradient norm and throughput over steps, the run's
// summary and its configuration. Built from output_dir/metrics.jsonl, so it also works
// for a run in progress.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TemperError } from '../tensor/index.js';

type Entry = Record<string, number>;

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

function fmt(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(2) : String(+v.toPrecision(4));
}

interface Series {
  label: string;
  color: string;
  points: [number, number][];
}

/** A line chart of one or more series against step, with min/max ticks on both axes. */
function chart(title: string, series: Series[]): string {
  const all = series.flatMap((s) => s.points).filter(([, y]) => Number.isFinite(y));
  if (all.length === 0) return '';
  const W = 460, H = 220, L = 62, R = 12, Tp = 28, B = 34;
  const xs = all.map(([x]) => x), ys = all.map(([, y]) => y);
  let [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  if (x0 === x1) (x0 -= 1), (x1 += 1);
  if (y0 === y1) (y0 -= Math.abs(y0) * 0.1 || 1), (y1 += Math.abs(y1) * 0.1 || 1);
  const px = (x: number) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const py = (y: number) => Tp + (1 - (y - y0) / (y1 - y0)) * (H - Tp - B);
  const grid = [0, 0.25, 0.5, 0.75, 1].map((f) => {
    const y = y0 + f * (y1 - y0);
    return `<line x1="${L}" x2="${W - R}" y1="${py(y)}" y2="${py(y)}" stroke="#e5e7eb"/><text x="${L - 6}" y="${py(y) + 4}" text-anchor="end">${fmt(y)}</text>`;
  });
  const lines = series
    .filter((s) => s.points.length)
    .map((s) => {
      const pts = s.points.filter(([, y]) => Number.isFinite(y)).map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`);
      const dots = s.points.length <= 40 ? pts.map((p) => `<circle cx="${p.split(',')[0]}" cy="${p.split(',')[1]}" r="2.5" fill="${s.color}"/>`).join('') : '';
      return `<polyline fill="none" stroke="${s.color}" stroke-width="1.8" points="${pts.join(' ')}"/>${dots}`;
    });
  const legend = series
    .filter((s) => s.points.length)
    .map((s, i) => `<rect x="${L + i * 120}" y="8" width="10" height="10" fill="${s.color}"/><text x="${L + 14 + i * 120}" y="17">${esc(s.label)}</text>`);
  return `<figure><figcaption>${esc(title)}</figcaption><svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${esc(title)}">
${grid.join('\n')}
<line x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}" stroke="#9ca3af"/>
<text x="${L}" y="${H - B + 16}">${fmt(x0)}</text><text x="${W - R}" y="${H - B + 16}" text-anchor="end">${fmt(x1)}</text>
<text x="${(L + W - R) / 2}" y="${H - 6}" text-anchor="middle">step</text>
${lines.join('\n')}
${legend.join('\n')}
</svg></figure>`;
}

/** Reads metrics.jsonl (skipping a torn last line of a run in progress). */
export function readMetrics(dir: string): Entry[] {
  const path = join(dir, 'metrics.jsonl');
  if (!existsSync(path)) throw new TemperError(`${dir}: no metrics.jsonl (not a temper run folder?)`);
  const out: Entry[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line));
    } catch {
      // the writer may be mid-line
    }
  }
  return out;
}

/** The report page as a string. */
export function renderReport(title: string, entries: Entry[], config: Record<string, unknown> | null, summary: Record<string, string>): string {
  const train = entries.filter((e) => 'loss' in e);
  const evals = entries.filter((e) => 'eval_loss' in e);
  const pts = (es: Entry[], k: string): [number, number][] => es.filter((e) => k in e).map((e) => [e.step!, e[k]!]);
  const charts = [
    chart('loss', [
      { label: 'train loss', color: '#2563eb', points: pts(train, 'loss') },
      { label: 'eval loss', color: '#dc2626', points: pts(evals, 'eval_loss') },
    ]),
    chart('learning rate', [{ label: 'learning_rate', color: '#059669', points: pts(train, 'learning_rate') }]),
    chart('gradient norm (before clipping)', [{ label: 'grad_norm', color: '#7c3aed', points: pts(train, 'grad_norm') }]),
    chart('throughput (tokens/s)', [{ label: 'tokens_per_second', color: '#d97706', points: pts(train, 'tokens_per_second') }]),
    chart('eval token accuracy', [{ label: 'eval_token_accuracy', color: '#0891b2', points: pts(evals, 'eval_token_accuracy') }]),
  ].filter(Boolean);
  const rows = Object.entries(summary).map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join('');
  const cfg = config ? `<h2>Configuration</h2><pre>${esc(JSON.stringify(config, null, 2))}</pre>` : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1000px;color:#111827;padding:0 16px}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:28px 0 8px}
.charts{display:flex;flex-wrap:wrap;gap:16px} figure{margin:0;border:1px solid #e5e7eb;border-radius:8px;padding:8px}
figcaption{font-weight:600;margin:0 0 4px 6px} svg text{font-size:11px;fill:#374151}
table{border-collapse:collapse} th,td{text-align:left;padding:3px 12px 3px 0;border-bottom:1px solid #f3f4f6} th{color:#6b7280;font-weight:500}
pre{background:#f9fafb;border:1px solid #e5e7eb;border-radius:8px;padding:12px;overflow:auto}
</style></head><body>
<h1>${esc(title)}</h1>
<table>${rows}</table>
<h2>Metrics</h2>
<div class="charts">${charts.join('\n') || '<p>No metrics logged yet.</p>'}</div>
${cfg}
</body></html>
`;
}

/** Writes output_dir/report.html from its metrics.jsonl and run_config.json (atomically). */
export function writeReport(dir: string, title = 'temper run'): string {
  const entries = readMetrics(dir);
  const cfgPath = join(dir, 'run_config.json');
  const config = existsSync(cfgPath) ? (JSON.parse(readFileSync(cfgPath, 'utf8')) as Record<string, unknown>) : null;
  const train = entries.filter((e) => 'loss' in e);
  const evals = entries.filter((e) => 'eval_loss' in e);
  const lastTrain = train.at(-1), lastEval = evals.at(-1);
  const summary: Record<string, string> = {
    folder: dir,
    steps: lastTrain ? String(lastTrain.step) : '0',
    'tokens trained': String(train.reduce((n, e) => n + (e.num_tokens ?? 0), 0)),
    'final train loss': lastTrain ? fmt(lastTrain.loss!) : '–',
    'final eval loss': lastEval ? fmt(lastEval.eval_loss!) : '–',
  };
  const path = join(dir, 'report.html');
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, renderReport(title, entries, config, summary));
  renameSync(tmp, path);
  return path;
}
