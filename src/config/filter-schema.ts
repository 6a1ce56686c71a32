/**
 * Filter chains in the config: `http_filters` and `rpc_filters` on a listener, each entry a
 * built-in filter's name and its config (validated by that filter's own schema, its defaults
 * filled in), and `per_filter_config` on a route: `{ disabled: true }` or a replacement config.
 */
import { z } from 'zod';
import { FILTER_SCHEMAS } from '../filters/schemas.ts';

export const filterEntry = z.object({
  name: z.string().min(1),
  config: z.unknown().optional(),
}).strict();

export type FilterEntryConfig = { readonly name: string; readonly config?: unknown };

type Issue = { path: PropertyKey[]; message: string };

function parseWith(name: string, value: unknown, at: PropertyKey[], issues: Issue[]): unknown {
  const result = FILTER_SCHEMAS[name].schema.safeParse(value ?? {});
  if (result.success) return result.data;
  for (const i of result.error.issues) issues.push({ path: [...at, ...i.path], message: i.message });
  return undefined;
}

interface FilterBearing {
  http_filters: { name: string; config?: unknown }[];
  rpc_filters: { name: string; config?: unknown }[];
  virtual_hosts?: { routes: { per_filter_config?: Record<string, unknown> }[] }[];
  rpc?: { routes: { per_filter_config?: Record<string, unknown> }[] };
}

/**
 * Checks a listener's filters (names, where each may run, each config against its schema) and
 * returns the listener with every filter config parsed (defaults in, durations in ms).
 */
export function normalizeFilters<L extends FilterBearing>(l: L, addIssue: (i: Issue) => void): L {
  const issues: Issue[] = [];
  const chain = (key: 'http_filters' | 'rpc_filters', kind: 'http' | 'rpc'): { name: string; config?: unknown }[] => {
    const seen = new Set<string>();
    return l[key].map((f, i) => {
      const schema = FILTER_SCHEMAS[f.name];
      if (!schema) {
        issues.push({ path: [key, i, 'name'], message: `unknown filter "${f.name}" (known: ${Object.keys(FILTER_SCHEMAS).join(', ')})` });
        return f;
      }
      if (!schema[kind]) issues.push({ path: [key, i, 'name'], message: `${f.name} does not run on ${kind === 'rpc' ? 'RPC calls' : 'HTTP requests'}` });
      if (seen.has(f.name)) issues.push({ path: [key, i, 'name'], message: `${f.name} appears twice (per_filter_config on routes varies it instead)` });
      seen.add(f.name);
      return { name: f.name, config: parseWith(f.name, f.config, [key, i, 'config'], issues) };
    });
  };
  const http = chain('http_filters', 'http');
  const rpc = chain('rpc_filters', 'rpc');
  const perRoute = (names: Set<string>, routes: { per_filter_config?: Record<string, unknown> }[], at: PropertyKey[]) => routes.map((r, ri) => {
    if (r.per_filter_config === undefined) return r;
    const out: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(r.per_filter_config)) {
      const path = [...at, ri, 'per_filter_config', name];
      if (!names.has(name)) {
        issues.push({ path, message: `${name} is not in this listener's ${at.includes('rpc') ? 'rpc_filters' : 'http_filters'}` });
        continue;
      }
      const v = value as { disabled?: unknown } | null;
      if (v && typeof v === 'object' && 'disabled' in v) {
        if (v.disabled !== true || Object.keys(v).length !== 1) issues.push({ path, message: 'expected { disabled: true } or a config for the filter' });
        out[name] = { disabled: true };
      } else out[name] = parseWith(name, value, path, issues);
    }
    return { ...r, per_filter_config: out };
  });
  const httpNames = new Set(http.map((f) => f.name));
  const rpcNames = new Set(rpc.map((f) => f.name));
  const virtual_hosts = l.virtual_hosts?.map((vh, v) => ({ ...vh, routes: perRoute(httpNames, vh.routes, ['virtual_hosts', v, 'routes']) }));
  const rpcRoutes = l.rpc ? { ...l.rpc, routes: perRoute(rpcNames, l.rpc.routes, ['rpc', 'routes']) } : undefined;
  for (const i of issues) addIssue(i);
  return { ...l, http_filters: http, rpc_filters: rpc, ...(virtual_hosts ? { virtual_hosts } : {}), ...(rpcRoutes ? { rpc: rpcRoutes } : {}) };
}
