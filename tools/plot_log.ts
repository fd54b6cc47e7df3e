/**
 * Plots a training log (`log.jsonl` written by tools/train.ts) as a PNG: the losses (or `--keys`)
 * against the iteration in the top panel, the validation metrics (`--val-keys`, default mIoU)
 * against the iteration in the bottom panel. Drawn as SVG and rendered with sharp.
 *
 *   npx tsx tools/plot_log.ts work_dirs/upernet_c2f_shapes/log.jsonl --out curves.png [--keys loss,decode.acc]
 *
 * Train lines: `{iter, lr, loss, 'decode.loss_ce', ...}`; validation lines: `{mode: 'val', iter?, mIoU, ...}`
 * (a val line without `iter` is placed at the last train iteration seen before it).
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { writeFileAtomic } from '../src/io/atomic_write.ts';
import { runCli } from './cli.ts';

type Rec = Record<string, unknown>;
interface Series { key: string; pts: [number, number][] }

/** Parses JSON lines; errors name the file and the 1-based line number. Blank lines are skipped. */
export function parseLog(text: string, file: string): { train: Rec[]; val: Rec[] } {
  const train: Rec[] = [];
  const val: Rec[] = [];
  let lastIter = 0;
  const lines = text.split(/\r?\n/);
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    let rec: unknown;
    try {
      rec = JSON.parse(line);
    } catch (e) {
      throw new Error(`${file}: line ${i + 1} is not valid JSON (${(e as Error).message}): ${line.slice(0, 80)}`);
    }
    if (typeof rec !== 'object' || rec === null || Array.isArray(rec)) throw new Error(`${file}: line ${i + 1} is not a JSON object`);
    const r = rec as Rec;
    if (r.iter !== undefined && (typeof r.iter !== 'number' || !Number.isFinite(r.iter))) throw new Error(`${file}: line ${i + 1}: 'iter' is not a number`);
    if (r.mode === 'val') {
      val.push({ ...r, iter: typeof r.iter === 'number' ? r.iter : lastIter });
    } else {
      if (typeof r.iter !== 'number') throw new Error(`${file}: line ${i + 1}: a train record needs a numeric 'iter'`);
      lastIter = r.iter;
      train.push(r);
    }
  });
  if (train.length === 0 && val.length === 0) throw new Error(`${file}: the log is empty`);
  return { train, val };
}

function series(recs: Rec[], keys: string[]): Series[] {
  return keys.map((key) => ({
    key,
    pts: recs.filter((r) => typeof r[key] === 'number' && Number.isFinite(r[key] as number)).map((r): [number, number] => [r.iter as number, r[key] as number]),
  }));
}

/** "Nice" tick values covering [lo, hi]. */
function ticks(lo: number, hi: number, n = 5): number[] {
  if (!(hi > lo)) { hi = lo + 1; }
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + 1e-9 * step; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return out;
}

const fmt = (v: number) => (Math.abs(v) >= 1000 || (Math.abs(v) < 0.01 && v !== 0) ? v.toPrecision(2) : String(Number(v.toPrecision(4))));
const esc = (t: string) => t.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const COLOURS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

/** One panel (axes, ticks, grid, polylines with markers, legend) at (x0, y0) of size w×h. */
function panel(x0: number, y0: number, w: number, h: number, title: string, ylabel: string, ss: Series[], xRange: [number, number]): string {
  const ml = 70, mr = 20, mt = 30, mb = 45;
  const pw = w - ml - mr, ph = h - mt - mb;
  const ox = x0 + ml, oy = y0 + mt;
  const out: string[] = [];
  out.push(`<text x="${x0 + w / 2}" y="${y0 + 20}" text-anchor="middle" font-size="15" font-weight="bold">${esc(title)}</text>`);
  out.push(`<rect x="${ox}" y="${oy}" width="${pw}" height="${ph}" fill="white" stroke="black"/>`);
  const ys = ss.flatMap((s) => s.pts.map((p) => p[1]));
  if (ys.length === 0) {
    out.push(`<text x="${ox + pw / 2}" y="${oy + ph / 2}" text-anchor="middle" font-size="13" fill="#666">no data</text>`);
    return out.join('');
  }
  let [ylo, yhi] = [Math.min(...ys), Math.max(...ys)];
  if (yhi - ylo < 1e-12) { ylo -= 0.5 * Math.max(Math.abs(ylo), 1e-3); yhi += 0.5 * Math.max(Math.abs(yhi), 1e-3); }
  const pad = (yhi - ylo) * 0.05;
  ylo -= pad; yhi += pad;
  let [xlo, xhi] = xRange;
  if (xhi <= xlo) { xlo -= 1; xhi += 1; }
  const X = (v: number) => ox + ((v - xlo) / (xhi - xlo)) * pw;
  const Y = (v: number) => oy + ph - ((v - ylo) / (yhi - ylo)) * ph;
  for (const t of ticks(xlo, xhi)) {
    if (t < xlo || t > xhi) continue;
    out.push(`<line x1="${X(t)}" y1="${oy}" x2="${X(t)}" y2="${oy + ph}" stroke="#e5e5e5"/>`);
    out.push(`<line x1="${X(t)}" y1="${oy + ph}" x2="${X(t)}" y2="${oy + ph + 5}" stroke="black"/>`);
    out.push(`<text x="${X(t)}" y="${oy + ph + 18}" text-anchor="middle" font-size="11">${fmt(t)}</text>`);
  }
  for (const t of ticks(ylo, yhi)) {
    if (t < ylo || t > yhi) continue;
    out.push(`<line x1="${ox}" y1="${Y(t)}" x2="${ox + pw}" y2="${Y(t)}" stroke="#e5e5e5"/>`);
    out.push(`<line x1="${ox - 5}" y1="${Y(t)}" x2="${ox}" y2="${Y(t)}" stroke="black"/>`);
    out.push(`<text x="${ox - 8}" y="${Y(t) + 4}" text-anchor="end" font-size="11">${fmt(t)}</text>`);
  }
  out.push(`<text x="${ox + pw / 2}" y="${oy + ph + 36}" text-anchor="middle" font-size="12">iter</text>`);
  out.push(`<text transform="translate(${x0 + 16},${oy + ph / 2}) rotate(-90)" text-anchor="middle" font-size="12">${esc(ylabel)}</text>`);
  ss.forEach((s, i) => {
    if (s.pts.length === 0) return;
    const c = COLOURS[i % COLOURS.length];
    out.push(`<polyline fill="none" stroke="${c}" stroke-width="2" points="${s.pts.map(([x, y]) => `${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join(' ')}"/>`);
    if (s.pts.length <= 60) for (const [x, y] of s.pts) out.push(`<circle cx="${X(x).toFixed(1)}" cy="${Y(y).toFixed(1)}" r="2.5" fill="${c}"/>`);
  });
  // Legend, top right inside the plot.
  const shown = ss.map((s, i) => ({ s, i })).filter(({ s }) => s.pts.length > 0);
  const lw = 24 + Math.max(...shown.map(({ s }) => s.key.length)) * 7;
  const lh = shown.length * 16 + 6;
  // The corner whose legend box would cover the fewest data points (top right first on ties).
  const corners: [number, number][] = [
    [ox + pw - lw - 8, oy + 8], [ox + pw - lw - 8, oy + ph - lh - 8], [ox + 8, oy + 8], [ox + 8, oy + ph - lh - 8],
  ];
  const covered = ([cx, cy]: [number, number]) => {
    let c = 0;
    for (const { s } of shown) {
      for (let k = 0; k < s.pts.length; k++) {
        // Sample each segment so lines crossing the box count, not only the markers.
        const [x1, y1] = s.pts[k];
        const [x2, y2] = s.pts[Math.min(k + 1, s.pts.length - 1)];
        for (let t = 0; t <= 1; t += 0.1) {
          const px = X(x1 + (x2 - x1) * t), py = Y(y1 + (y2 - y1) * t);
          if (px >= cx - 4 && px <= cx + lw + 4 && py >= cy - 4 && py <= cy + lh + 4) c++;
        }
      }
    }
    return c;
  };
  const [lx, ly] = corners.reduce((best, c) => (covered(c) < covered(best) ? c : best));
  out.push(`<rect x="${lx}" y="${ly}" width="${lw}" height="${lh}" fill="white" fill-opacity="0.85" stroke="#999"/>`);
  shown.forEach(({ s, i }, k) => {
    const yy = ly + 14 + k * 16;
    out.push(`<line x1="${lx + 5}" y1="${yy - 4}" x2="${lx + 19}" y2="${yy - 4}" stroke="${COLOURS[i % COLOURS.length]}" stroke-width="2"/>`);
    out.push(`<text x="${lx + 23}" y="${yy}" font-size="11">${esc(s.key)}</text>`);
  });
  return out.join('');
}

export interface PlotOptions { keys?: string[]; valKeys?: string[]; title?: string }

/** The SVG of the two panels. */
export function renderCurvesSvg(log: { train: Rec[]; val: Rec[] }, opts: PlotOptions = {}): string {
  const trainKeys = new Set(log.train.flatMap((r) => Object.keys(r).filter((k) => typeof r[k] === 'number')));
  const keys = opts.keys ?? [...trainKeys].filter((k) => k === 'loss' || k.includes('loss'));
  const valKeys = opts.valKeys ?? ['mIoU'];
  const iters = [...log.train, ...log.val].map((r) => r.iter as number);
  const xMax = Math.max(...iters);
  const xRange: [number, number] = [Math.min(0, ...iters), xMax + Math.max(1, 0.02 * xMax)];
  const W = 900, H = 360;
  const body = panel(0, 0, W, H, 'training', keys.length === 1 ? keys[0] : 'value', series(log.train, keys), xRange) +
    panel(0, H, W, H, 'validation', valKeys.join(', '), series(log.val, valKeys), xRange);
  const title = opts.title ? `<text x="${W - 10}" y="${2 * H - 6}" text-anchor="end" font-size="10" fill="#666">${esc(opts.title)}</text>` : '';
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${2 * H}" font-family="sans-serif">` +
    `<rect width="100%" height="100%" fill="white"/>${body}${title}</svg>`;
}

/** Reads `file`, checks the keys, writes the PNG to `out`. */
export async function plotLog(file: string, out: string, opts: PlotOptions = {}): Promise<{ train: number; val: number }> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new Error(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const log = parseLog(text, file);
  const avail = new Set(log.train.flatMap((r) => Object.keys(r)));
  for (const k of opts.keys ?? []) {
    if (!avail.has(k)) throw new Error(`--keys: '${k}' is in no train record of ${file}; available: ${[...avail].filter((x) => x !== 'iter').join(', ')}`);
  }
  const svg = renderCurvesSvg(log, { ...opts, title: path.basename(path.dirname(path.resolve(file))) + '/' + path.basename(file) });
  const png = await sharp(Buffer.from(svg)).png().toBuffer();
  await writeFileAtomic(out, png);
  return { train: log.train.length, val: log.val.length };
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('plot_log.ts')) {
  await runCli(async () => {
    const argv = await yargs(hideBin(process.argv))
      .usage('$0 LOG_JSONL --out curves.png [--keys loss,decode.acc] [--val-keys mIoU,mAcc]')
      .option('out', { type: 'string', demandOption: true, describe: 'PNG to write' })
      .option('keys', { type: 'string', describe: 'comma-separated train keys (default: loss and its parts)' })
      .option('val-keys', { type: 'string', default: 'mIoU', describe: 'comma-separated validation keys' })
      .demandCommand(1, 'give the log.jsonl file')
      .strict()
      .parse();
    const split = (s?: string) => (s === undefined ? undefined : s.split(',').map((x) => x.trim()).filter(Boolean));
    const file = String(argv._[0]);
    const n = await plotLog(file, argv.out, { keys: split(argv.keys), valKeys: split(argv['val-keys']) });
    console.log(`wrote ${argv.out} (${n.train} train records, ${n.val} validation records)`);
  });
}
