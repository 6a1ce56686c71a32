/**
 * Reading Prometheus text in tests: every sample line with its labels (histograms included, which
 * parse-prometheus-text-format returns without labels), and `promtool check metrics` when the
 * Debian prometheus package is installed.
 */
import { spawnSync } from 'node:child_process';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseSamples(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = LINE.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL)) labels[l[1]] = l[2].replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    out.push({ name: m[1], labels, value: m[3] === '+Inf' ? Infinity : Number(m[3]) });
  }
  return out;
}

const matches = (s: Sample, name: string, labels: Record<string, string>) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v);

/** The sum of the samples of `name` whose labels include `labels` (0 if none). */
export function total(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples.filter((s) => matches(s, name, labels)).reduce((n, s) => n + s.value, 0);
}

export interface HistogramSeries {
  /** le → cumulative count, in the order exposed. */
  buckets: { le: number; count: number }[];
  sum: number;
  count: number;
}

/** One histogram series (the labels must pick exactly one). */
export function histogram(samples: Sample[], name: string, labels: Record<string, string>): HistogramSeries {
  const buckets = samples.filter((s) => matches(s, `${name}_bucket`, labels)).map((s) => ({ le: s.labels.le === '+Inf' ? Infinity : Number(s.labels.le), count: s.value }));
  const sums = samples.filter((s) => matches(s, `${name}_sum`, labels));
  const counts = samples.filter((s) => matches(s, `${name}_count`, labels));
  if (sums.length !== 1 || counts.length !== 1) throw new Error(`${name}${JSON.stringify(labels)}: ${sums.length} series, expected 1`);
  return { buckets, sum: sums[0].value, count: counts[0].value };
}

/** Where promtool is, or undefined (then tests that need it skip, saying so). */
export function promtoolPath(): string | undefined {
  const r = spawnSync('sh', ['-c', 'command -v promtool'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** `promtool check metrics` on the text: its exit code and what it printed. */
export function promtoolCheck(promtool: string, text: string): { code: number | null; output: string } {
  const r = spawnSync(promtool, ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, output: `${r.stdout}${r.stderr}` };
}
