/**
 * A request's hash for consistent-hash clusters (ring_hash, maglev), by its route's hash_policy,
 * as Envoy computes it: each policy that finds a value mixes its hash in (rotate, xor); a terminal
 * policy that finds one ends the list; none found: no hash (the balancer picks at random).
 */
import { hashKey } from '../../cluster/consistent-hash.ts';
import type { HashPolicyConfig } from '../../config/route-schema.ts';
import type { HeaderMap } from '../../stream/header-map.ts';

export function requestHash(policies: readonly HashPolicyConfig[], h: HeaderMap, clientIp: string): number | undefined {
  let hash: number | undefined;
  for (const p of policies) {
    const value = p.header !== undefined ? h.get(p.header.name)
      : p.cookie !== undefined ? cookie(h.get('cookie'), p.cookie.name)
      : p.query_parameter !== undefined ? queryParameter(h.path, p.query_parameter.name)
      : p.source_ip ? clientIp : undefined;
    if (value === undefined) continue;
    const own = hashKey(value);
    hash = hash === undefined ? own : (((hash << 1) | (hash >>> 31)) ^ own) >>> 0;
    if (p.terminal) break;
  }
  return hash;
}

/** One cookie's value from a Cookie header ("a=1; b=2"). */
export function cookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

function queryParameter(path: string, name: string): string | undefined {
  const q = path.indexOf('?');
  if (q < 0) return undefined;
  return new URLSearchParams(path.slice(q + 1)).get(name) ?? undefined;
}
