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
  /** Anything outside listeners and clusters (admin, log, drain_timeout). */
  other: string[];
}

function diffNamed<T extends { name: string }>(before: readonly T[], after: readonly T[]): NamedDiff {
  const old = new Map(before.map((x) => [x.name, JSON.stringify(x)]));
  const out: NamedDiff = { added: [], removed: [], changed: [], unchanged: [] };
  for (const x of after) {
    const prev = old.get(x.name);
    if (prev === undefined) out.added.push(x.name);
    else if (prev === JSON.stringify(x)) out.unchanged.push(x.name);
    else out.changed.push(x.name);
  }
  const names = new Set(after.map((x) => x.name));
  for (const x of before) if (!names.has(x.name)) out.removed.push(x.name);
  return out;
}

export function diffConfigs(before: ShuttleConfig, after: ShuttleConfig): ConfigDiff {
  const other = (['admin', 'log', 'drain_timeout'] as const).filter((k) => JSON.stringify(before[k]) !== JSON.stringify(after[k]));
  return { listeners: diffNamed(before.listeners, after.listeners), clusters: diffNamed(before.clusters, after.clusters), other };
}
