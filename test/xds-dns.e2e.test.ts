/**
 * A STRICT_DNS cluster from xDS that respects DNS TTLs (respect_dns_ttl) and asks its own DNS
 * server (typed_dns_resolver_config, c-ares): when the name's answer changes, traffic follows
 * within the TTL (1 s), long before dns_refresh_rate (60 s) would have asked again. Real CLI, the
 * test ADS control plane, a dns-packet DNS server, node:http upstreams on 127.0.0.1 and ::1.
 */
import http from 'node:http';
import { afterAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { TestDnsServer } from './support/dns-server.ts';
import { ShuttleProcess, writeTempConfig } from './support/shuttle.ts';
import { eventually } from './support/wait.ts';
import { bootstrapFor, httpListener, routeConfig, XdsControlPlane } from './support/xds-server.ts';

const cleanup: (() => Promise<unknown> | unknown)[] = [];
afterAll(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

/** A node:http server on `host`:`port` (0: any) that names itself. */
function named(name: string, host: string, port = 0): Promise<http.Server> {
  const server = http.createServer((_, res) => res.end(name));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}

describe('DNS clusters from xDS', () => {
  it('follows a changed DNS answer within its TTL (respect_dns_ttl, the cluster\'s own DNS server)', { timeout: 60_000 }, async () => {
    // The same port on 127.0.0.1 and ::1: the DNS answer alone decides which one is used.
    let v6: http.Server | undefined;
    let v4: http.Server | undefined;
    for (let attempt = 0; attempt < 10 && !v4; attempt++) {
      v6 = await named('v6', '::1');
      v4 = await named('v4', '127.0.0.1', (v6.address() as { port: number }).port).catch(() => undefined);
      if (!v4) v6.close();
    }
    if (!v4 || !v6) throw new Error('no port free on both 127.0.0.1 and ::1');
    const port = (v4.address() as { port: number }).port;
    cleanup.push(() => v4!.close(), () => v6!.close());
    const dns = new TestDnsServer();
    await dns.start();
    cleanup.push(() => dns.close());
    dns.records.set('api.mesh.test', { addresses: ['127.0.0.1'], ttl: 1 });

    const cp = new XdsControlPlane();
    await cp.start();
    cleanup.push(() => cp.kill());
    cp.set('cds', [{
      name: 'api', type: 'STRICT_DNS', respect_dns_ttl: true, dns_refresh_rate: { seconds: 60 }, connect_timeout: { seconds: 1 },
      typed_dns_resolver_config: { name: 'envoy.network.dns_resolver.cares', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig', resolvers: [{ socket_address: { address: '127.0.0.1', port_value: dns.port } }] } },
      load_assignment: { cluster_name: 'api', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 'api.mesh.test', port_value: port } } } }] }] },
    }]);
    cp.set('lds', [httpListener('web', 0, 'routes')]);
    cp.set('rds', [routeConfig('routes', [{ match: { prefix: '/' }, route: { cluster: 'api' } }])]);
    const shuttle = new ShuttleProcess(writeTempConfig(bootstrapFor(cp, 'shuttle-dns-ttl')), { configFlag: '--bootstrap', threads: 2 });
    cleanup.push(() => shuttle.stop());
    const { admin } = await shuttle.ready();
    const bound = await eventually(async () => (await (await fetch(`${admin}/listeners`)).json()) as { name: string; address: string }[], (l) => l.length === 1, 15_000);
    const get = async () => {
      const res = await request(`http://${bound[0].address}/`, { reset: true });
      return res.body.text();
    };
    await eventually(() => get().catch(() => ''), (b) => b === 'v4', 15_000);

    // The answer changes: a 1 s TTL means Shuttle asks again within about a second, not 60.
    dns.records.set('api.mesh.test', { addresses: ['::1'], ttl: 1 });
    const changedAt = Date.now();
    await eventually(() => get().catch(() => ''), (b) => b === 'v6', 20_000);
    expect(Date.now() - changedAt).toBeLessThan(30_000);
    const dump = (await (await fetch(`${admin}/config_dump`)).json()) as { config: { clusters: { name: string; hosts: unknown[] }[] } };
    expect(dump.config.clusters.find((c) => c.name === 'api')!.hosts).toEqual([`[::1]:${port}`]);
    expect(dns.queries.get('api.mesh.test')).toBeGreaterThanOrEqual(2);
    expect(cp.nacks()).toEqual([]);
  });
});
