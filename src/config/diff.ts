/**
 * What changed between two configs, by name: the reload plan is read off this.
 */
import type { ShuttleConfig } from './schema.ts';

export interface NamedDiff {
  added: string[];
  removed: string[];
  changed: string[];
  unchanged: string[];
}

export interface ConfigDiff {
  listeners: NamedDiff;
  clusters: NamedDiff;
  /** Fields outside listeners and clusters that changed, dotted: `log.level`, `drain_timeout`. */
  other: string[];
}

/**
 * Fields a reload cannot apply, and why: a reload that changes one is refused whole (the running
 * config stays), so that what `shuttle reload` reports live is the whole file.
 */
export const RESTART_ONLY_FIELDS: Readonly<Record<string, string>> = {
  'admin.address': 'the admin API keeps its listening socket until a restart or an in-place upgrade (shuttle upgrade)',
};

/** The changed fields a reload cannot apply, each with its reason; empty when it can apply all. */
export function restartOnly(diff: ConfigDiff): string[] {
  return diff.other.filter((f) => f in RESTART_ONLY_FIELDS).map((f) => `${f}: changed, but ${RESTART_ONLY_FIELDS[f]}; put it back to reload the rest`);
}

function diffNamed<T extends { name: string }>(before: readonly T[], after: readonly T[]): NamedDiff {
  const old = new Map(before.map((x) => [x.name, x]));
  const out: NamedDiff = { added: [], removed: [], changed: [], unchanged: [] };
  for (const x of after) {
    const prev = old.get(x.name);
    if (prev === undefined) out.added.push(x.name);
    // The same (frozen) object: an xDS generation shares what it did not change, at any scale.
    else if (prev === x || JSON.stringify(prev) === JSON.stringify(x)) out.unchanged.push(x.name);
    else out.changed.push(x.name);
  }
  const names = new Set(after.map((x) => x.name));
  for (const x of before) if (!names.has(x.name)) out.removed.push(x.name);
  return out;
}

/** Top-level fields and, for objects, their fields, by dotted name. */
function changedFields(before: Record<string, unknown>, after: Record<string, unknown>): string[] {
  const out: string[] = [];
  for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
    if (key === 'listeners' || key === 'clusters') continue;
    const a = before[key];
    const b = after[key];
    if (JSON.stringify(a) === JSON.stringify(b)) continue;
    const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
    if (isObject(a) && isObject(b)) {
      for (const sub of new Set([...Object.keys(a), ...Object.keys(b)])) if (JSON.stringify(a[sub]) !== JSON.stringify(b[sub])) out.push(`${key}.${sub}`);
    } else {
      out.push(key);
    }
  }
  return out;
}

export function diffConfigs(before: ShuttleConfig, after: ShuttleConfig): ConfigDiff {
  return { listeners: diffNamed(before.listeners, after.listeners), clusters: diffNamed(before.clusters, after.clusters), other: changedFields(before, after) };
}

/** Nothing changed at all. */
export function isEmptyDiff(diff: ConfigDiff): boolean {
  const none = (d: NamedDiff) => d.added.length + d.removed.length + d.changed.length === 0;
  return diff.other.length === 0 && none(diff.listeners) && none(diff.clusters);
}

/**
 * The clusters whose hosts alone changed, when that is the whole diff (an endpoint update: EDS,
 * DNS, or a reload that only moved hosts); undefined for any other change. Such a change needs no
 * new listeners or routers: workers swap those clusters' hosts in place.
 */
export function hostsOnlyChange(before: ShuttleConfig, after: ShuttleConfig, diff: ConfigDiff): string[] | undefined {
  const d = diff.clusters;
  if (diff.other.length > 0 || d.added.length + d.removed.length > 0 || d.changed.length === 0) return undefined;
  if (diff.listeners.added.length + diff.listeners.removed.length + diff.listeners.changed.length > 0) return undefined;
  const old = new Map(before.clusters.map((c) => [c.name, c]));
  const next = new Map(after.clusters.map((c) => [c.name, c]));
  for (const name of d.changed) {
    const { hosts: _a, ...was } = old.get(name)!;
    const { hosts: _b, ...now } = next.get(name)!;
    if (JSON.stringify(was) !== JSON.stringify(now)) return undefined;
  }
  return d.changed;
}

/** "log.level", "listener web changed", "cluster b added": what a reload changed, for people. */
export function describeDiff(diff: ConfigDiff): string[] {
  const named = (kind: string, d: NamedDiff) => [
    ...d.added.map((n) => `${kind} ${n} added`),
    ...d.removed.map((n) => `${kind} ${n} removed`),
    ...d.changed.map((n) => `${kind} ${n} changed`),
  ];
  return [...diff.other, ...named('listener', diff.listeners), ...named('cluster', diff.clusters)];
}
