// Progress display for long work (downloads, training): a bar with rate and ETA on a
// terminal (cli-progress), plain periodic lines when stderr is not a TTY or with --quiet
// style output. Always on stderr, so stdout stays for results.
import { SingleBar } from 'cli-progress';

export interface Progress {
  update(value: number, detail?: string): void;
  stop(): void;
}

function fmtBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) (n /= 1000), i++;
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

function fmtSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const m = Math.floor(s / 60), h = Math.floor(m / 60);
  return h > 0 ? `${h}h${String(m % 60).padStart(2, '0')}m` : m > 0 ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${s.toFixed(0)}s`;
}

/** A progress display for `total` units ('bytes' formats sizes and rates as kB/MB/GB). */
export function createProgress(label: string, total: number, unit: 'bytes' | string = 'it', opts: { plain?: boolean } = {}): Progress {
  const start = Date.now();
  const fmt = (v: number) => (unit === 'bytes' ? fmtBytes(v) : `${Math.round(v)}`);
  const stats = (v: number) => {
    const s = (Date.now() - start) / 1000;
    const rate = s > 0 ? v / s : 0;
    const eta = rate > 0 ? (total - v) / rate : Infinity;
    return { rate: unit === 'bytes' ? `${fmtBytes(rate)}/s` : `${rate.toFixed(1)} ${unit}/s`, eta: fmtSeconds(eta) };
  };
  if (opts.plain || !process.stderr.isTTY) {
    let last = 0;
    return {
      update(v, detail) {
        if (Date.now() - last < 2000 && v < total) return;
        last = Date.now();
        const { rate, eta } = stats(v);
        process.stderr.write(`${label}: ${fmt(v)}/${fmt(total)} (${((100 * v) / Math.max(total, 1)).toFixed(0)}%) ${rate} eta ${eta}${detail ? ` ${detail}` : ''}\n`);
      },
      stop() {},
    };
  }
  const bar = new SingleBar({
    format: `${label} [{bar}] {percentage}% {shown} {rate} eta {eta_text} {detail}`,
    barsize: 30,
    hideCursor: true,
    clearOnComplete: false,
    stream: process.stderr,
  });
  bar.start(total, 0, { shown: '', rate: '', eta_text: '', detail: '' });
  return {
    update(v, detail = '') {
      const { rate, eta } = stats(v);
      bar.update(v, { shown: `${fmt(v)}/${fmt(total)}`, rate, eta_text: eta, detail });
    },
    stop() {
      bar.stop();
    },
  };
}
