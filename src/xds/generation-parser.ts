/**
 * Validates the generations xDS composes, parsing again only what changed. A control plane sends
 * an endpoint change among 10,000 endpoints as one resource (delta) or all of them again (state of
 * the world); either way, the composed config differs from the last in a cluster or two, and
 * parsing all 1,000 clusters and routes again would cost far more than the change. So each
 * listener and cluster is parsed alone and kept by name with the JSON it was parsed from; one
 * whose JSON is unchanged reuses its parsed (frozen) object. Reuse is also what lets the diff and
 * the workers see, by identity, that everything else stayed.
 *
 * Equivalent to xdsConfigSchema.safeParse(whole): that schema has no rule across list elements;
 * the cross-references (unknown clusters, duplicate names) are checked by the caller as before.
 */
import { deepFreeze } from '../config/load.ts';
import { xdsClusterSchema, xdsConfigSchema, xdsListenerSchema, type ClusterConfig, type ListenerConfig, type ShuttleConfig } from '../config/schema.ts';

type Raw = Record<string, unknown>;
export interface Issue {
  path: PropertyKey[];
  message: string;
}
export type ParseResult = { success: true; data: ShuttleConfig } | { success: false; issues: Issue[] };

interface Parsed<T> {
  json: string;
  value: T;
}

export class GenerationParser {
  private clusters = new Map<string, Parsed<ClusterConfig>>();
  private listeners = new Map<string, Parsed<ListenerConfig>>();

  parse(raw: Raw): ParseResult {
    const issues: Issue[] = [];
    const rest = xdsConfigSchema.safeParse({ ...raw, listeners: [], clusters: [] });
    if (!rest.success) issues.push(...rest.error.issues.map((i) => ({ path: i.path, message: i.message })));
    const listeners = this.parseList('listeners', raw.listeners, this.listeners, xdsListenerSchema, issues) as ListenerConfig[];
    const clusters = this.parseList('clusters', raw.clusters, this.clusters, xdsClusterSchema, issues) as ClusterConfig[];
    if (!rest.success || issues.length > 0) return { success: false, issues };
    return { success: true, data: deepFreeze({ ...rest.data, listeners, clusters }) };
  }

  private parseList<T>(key: string, list: unknown, cache: Map<string, Parsed<T>>, schema: { safeParse(v: unknown): { success: true; data: T } | { success: false; error: { issues: { path: PropertyKey[]; message: string }[] } } }, issues: Issue[]): T[] {
    if (!Array.isArray(list)) {
      issues.push({ path: [key], message: 'expected an array' });
      return [];
    }
    const out: T[] = [];
    const seen = new Map<string, Parsed<T>>();
    list.forEach((item: Raw, i) => {
      const name = typeof item?.name === 'string' ? item.name : undefined;
      const json = JSON.stringify(item);
      const known = name !== undefined ? cache.get(name) : undefined;
      if (known && known.json === json) {
        out.push(known.value);
        seen.set(name!, known);
        return;
      }
      const parsed = schema.safeParse(item);
      if (!parsed.success) {
        for (const issue of parsed.error.issues) issues.push({ path: [key, i, ...issue.path], message: issue.message });
        return;
      }
      const value = deepFreeze(parsed.data);
      out.push(value);
      if (name !== undefined) seen.set(name, { json, value });
    });
    // Keep what this generation has (a NACKed one too: entries are keyed by content, so a stale one is never reused wrongly).
    for (const [name, p] of seen) cache.set(name, p);
    const names = new Set(list.map((item: Raw) => item?.name));
    for (const name of cache.keys()) if (!names.has(name)) cache.delete(name);
    return out;
  }
}
