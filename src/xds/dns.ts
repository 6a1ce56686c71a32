/**
 * STRICT_DNS and LOGICAL_DNS clusters from xDS: their names resolved on the main thread with
 * node:dns, again every dns_refresh_rate, or when the answers' TTL runs out with respect_dns_ttl
 * (then by querying DNS servers, which give TTLs: the cluster's own servers from
 * typed_dns_resolver_config, or the system's; a name DNS does not know, such as one from
 * /etc/hosts, falls back to getaddrinfo and dns_refresh_rate). A change of addresses makes a new
 * generation, which every worker shares. A failed lookup keeps the addresses found before (Envoy
 * does the same) and is tried again after dns_failure_refresh_rate.
 */
import { lookup, Resolver } from 'node:dns/promises';
import net from 'node:net';
import { formatAddress } from '../config/address.ts';
import type { DnsTargets } from './mapping.ts';

/** At most this many addresses per name (a hostile or broken DNS answer stays bounded). */
const MAX_ADDRESSES_PER_NAME = 64;
/** A TTL below this (0 included) is resolved again this soon, not in a loop. */
const MIN_TTL_MS = 1000;
/** Codes of "this name has no such record": the other family, or getaddrinfo, may still know it. */
const NO_RECORD = new Set(['ENODATA', 'ENOTFOUND', 'ENONAME', 'NOTFOUND', 'NODATA']);

interface Answer {
  addresses: string[];
  /** Seconds the answer may be kept; undefined from getaddrinfo (no TTL). */
  ttl?: number;
}

/** A name's addresses with their TTL, from DNS servers (both families unless `family` says one). */
async function query(resolver: Resolver, name: string, family: 0 | 4 | 6): Promise<Answer | undefined> {
  const answers: { address: string; ttl: number }[] = [];
  for (const f of family === 0 ? [4, 6] : [family]) {
    try {
      answers.push(...(await (f === 4 ? resolver.resolve4(name, { ttl: true }) : resolver.resolve6(name, { ttl: true }))));
    } catch (err) {
      if (!NO_RECORD.has((err as NodeJS.ErrnoException).code ?? '')) throw err;
    }
  }
  if (answers.length === 0) return undefined;
  return { addresses: answers.map((a) => a.address), ttl: Math.min(...answers.map((a) => a.ttl)) };
}

async function resolveName(name: string, dns: DnsTargets, resolver: Resolver | undefined): Promise<Answer> {
  if (net.isIP(name)) return { addresses: [name] };
  if (resolver) {
    // The cluster's own servers decide; the system's servers may not know a name getaddrinfo does
    // (/etc/hosts, search domains) or may be unreachable: then getaddrinfo answers, without a TTL.
    const answer = dns.servers ? await query(resolver, name, dns.family) : await query(resolver, name, dns.family).catch(() => undefined);
    if (answer) return answer;
    if (dns.servers) throw Object.assign(new Error(`${name}: no A/AAAA record at ${dns.servers.join(', ')}`), { code: 'ENOTFOUND' });
  }
  return { addresses: (await lookup(name, { all: true, family: dns.family })).map((a) => a.address) };
}

/** A resolver for a cluster: its own servers, or the system's when it respects TTLs. */
export function resolverFor(dns: DnsTargets): Resolver | undefined {
  if (!dns.servers && !dns.respectTtl) return undefined;
  const resolver = new Resolver({ timeout: 2000, tries: 2 });
  if (dns.servers) resolver.setServers(dns.servers);
  return resolver;
}

/**
 * The hosts a cluster's names resolve to now, and when to resolve them again (ms); throws if any
 * name does not resolve.
 */
export async function resolveTargets(dns: DnsTargets, resolver = resolverFor(dns)): Promise<{ hosts: Record<string, unknown>[]; refreshMs: number }> {
  const hosts: Record<string, unknown>[] = [];
  const seen = new Set<string>();
  let ttl = Infinity;
  for (const t of dns.targets) {
    const answer = await resolveName(t.host, dns, resolver);
    if (answer.ttl !== undefined) ttl = Math.min(ttl, answer.ttl);
    const addresses = answer.addresses.slice(0, MAX_ADDRESSES_PER_NAME);
    for (const ip of dns.logical ? addresses.slice(0, 1) : addresses) {
      const address = formatAddress({ host: ip, port: t.port });
      if (seen.has(address)) continue;
      seen.add(address);
      hosts.push(t.weight === 1 ? { address } : { address, weight: t.weight });
    }
    if (dns.logical) break;
  }
  const refreshMs = dns.respectTtl && ttl !== Infinity ? Math.max(MIN_TTL_MS, ttl * 1000) : dns.refreshMs;
  return { hosts, refreshMs };
}

interface Running {
  key: string;
  timer: NodeJS.Timeout | undefined;
  hosts?: Record<string, unknown>[];
}

/** One resolver per DNS cluster: resolves at once, then again when due; reports changes. */
export class DnsResolvers {
  private readonly running = new Map<string, Running>();
  private readonly onChange: (cluster: string) => void;
  private readonly onError: (cluster: string, err: Error) => void;

  constructor(onChange: (cluster: string) => void, onError: (cluster: string, err: Error) => void) {
    this.onChange = onChange;
    this.onError = onError;
  }

  /** The hosts last resolved for a cluster (undefined: not yet). */
  hosts(cluster: string): Record<string, unknown>[] | undefined {
    return this.running.get(cluster)?.hosts;
  }

  /** Starts, restarts (targets changed) or stops resolvers to match the DNS clusters given. */
  sync(clusters: Map<string, DnsTargets>): void {
    for (const [name, r] of this.running) {
      const dns = clusters.get(name);
      if (!dns || JSON.stringify(dns) !== r.key) {
        clearTimeout(r.timer);
        this.running.delete(name);
      }
    }
    for (const [name, dns] of clusters) {
      if (this.running.has(name)) continue;
      const resolver = resolverFor(dns);
      const entry: Running = { key: JSON.stringify(dns), timer: undefined };
      const again = (ms: number) => {
        if (this.running.get(name) === entry) entry.timer = setTimeout(run, ms).unref();
      };
      const run = async () => {
        try {
          const { hosts, refreshMs } = await resolveTargets(dns, resolver);
          if (this.running.get(name) !== entry) return; // replaced meanwhile
          again(refreshMs);
          if (JSON.stringify(hosts) === JSON.stringify(entry.hosts)) return;
          entry.hosts = hosts;
          this.onChange(name);
        } catch (err) {
          if (this.running.get(name) !== entry) return;
          again(dns.failureRefreshMs ?? dns.refreshMs);
          this.onError(name, err as Error);
        }
      };
      this.running.set(name, entry);
      void run();
    }
  }

  stop(): void {
    for (const r of this.running.values()) clearTimeout(r.timer);
    this.running.clear();
  }
}
