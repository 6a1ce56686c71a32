/**
 * STRICT_DNS and LOGICAL_DNS clusters from xDS: their names resolved on the main thread with
 * node:dns (getaddrinfo: /etc/hosts, then DNS), again every dns_refresh_rate; a change of
 * addresses makes a new generation, which every worker shares. A failed lookup keeps the addresses
 * found before (Envoy does the same).
 */
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import { formatAddress } from '../config/address.ts';
import type { DnsTargets } from './mapping.ts';

/** At most this many addresses per name (a hostile or broken DNS answer stays bounded). */
const MAX_ADDRESSES_PER_NAME = 64;

/** The hosts a cluster's names resolve to now; throws if any name does not resolve. */
export async function resolveTargets(dns: DnsTargets): Promise<Record<string, unknown>[]> {
  const hosts: Record<string, unknown>[] = [];
  const seen = new Set<string>();
  for (const t of dns.targets) {
    const addresses = net.isIP(t.host) ? [t.host] : (await lookup(t.host, { all: true, family: dns.family })).map((a) => a.address).slice(0, MAX_ADDRESSES_PER_NAME);
    for (const ip of dns.logical ? addresses.slice(0, 1) : addresses) {
      const address = formatAddress({ host: ip, port: t.port });
      if (seen.has(address)) continue;
      seen.add(address);
      hosts.push(t.weight === 1 ? { address } : { address, weight: t.weight });
    }
    if (dns.logical) break;
  }
  return hosts;
}

/** One resolver per DNS cluster: resolves at once, then every refreshMs; reports changes. */
export class DnsResolvers {
  private readonly running = new Map<string, { key: string; timer: NodeJS.Timeout; hosts?: Record<string, unknown>[] }>();
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
        clearInterval(r.timer);
        this.running.delete(name);
      }
    }
    for (const [name, dns] of clusters) {
      if (this.running.has(name)) continue;
      const entry: { key: string; timer: NodeJS.Timeout; hosts?: Record<string, unknown>[] } = { key: JSON.stringify(dns), timer: setInterval(() => run(), dns.refreshMs).unref() };
      const run = async () => {
        try {
          const hosts = await resolveTargets(dns);
          if (this.running.get(name) !== entry) return; // replaced meanwhile
          if (JSON.stringify(hosts) === JSON.stringify(entry.hosts)) return;
          entry.hosts = hosts;
          this.onChange(name);
        } catch (err) {
          if (this.running.get(name) === entry) this.onError(name, err as Error);
        }
      };
      this.running.set(name, entry);
      void run();
    }
  }

  stop(): void {
    for (const r of this.running.values()) clearInterval(r.timer);
    this.running.clear();
  }
}
