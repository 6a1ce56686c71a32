/**
 * HTTP filters pushed by a control plane are enforced: an RBAC policy (Istio AuthorizationPolicy
 * style), a header mutation and a local rate limit arrive in LDS, a per-route RBAC exemption in
 * RDS; a new RBAC policy pushed later applies. Real CLI, the test ADS control plane, node:http.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import YAML from 'yaml';
import { httpUpstream } from './support/http.ts';
import { closedPort } from './support/net.ts';
import { ShuttleProcess, writeTempConfig } from './support/shuttle.ts';
import { eventually } from './support/wait.ts';
import { bootstrapFor, edsCluster, loadAssignment, routeConfig, XdsControlPlane } from './support/xds-server.ts';

const cleanup: (() => Promise<unknown> | unknown)[] = [];
afterAll(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const F = 'type.googleapis.com/envoy.extensions.filters.http';
const FULL = { default_value: { numerator: 100, denominator: 'HUNDRED' } };

/** DENY what `denied` matches (by path prefix), unless an x-role: admin header says otherwise. */
const rbac = (denied: string) => ({ name: 'envoy.filters.http.rbac', typed_config: { '@type': `${F}.rbac.v3.RBAC`, rules: { action: 'DENY', policies: {
  'deny-private': { permissions: [{ url_path: { path: { prefix: denied } } }], principals: [{ not_id: { header: { name: 'x-role', string_match: { exact: 'admin' } } } }] },
} } } });

function listener(port: number, denied: string) {
  return {
    name: 'web',
    address: { socket_address: { address: '127.0.0.1', port_value: port } },
    filter_chains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: {
      '@type': HCM, stat_prefix: 'web',
      rds: { route_config_name: 'web-routes', config_source: { ads: {}, resource_api_version: 'V3' } },
      http_filters: [
        rbac(denied),
        { name: 'envoy.filters.http.header_mutation', typed_config: { '@type': `${F}.header_mutation.v3.HeaderMutation`, mutations: { response_mutations: [{ append: { header: { key: 'x-mesh', value: 'shuttle' } } }] } } },
        { name: 'envoy.filters.http.local_ratelimit', typed_config: { '@type': `${F}.local_ratelimit.v3.LocalRateLimit`, stat_prefix: 'rl',
          token_bucket: { max_tokens: 5, tokens_per_fill: { value: 1 }, fill_interval: { seconds: 60 } }, filter_enabled: FULL, filter_enforced: FULL } },
        { name: 'envoy.filters.http.router', typed_config: { '@type': `${F}.router.v3.Router` } },
      ],
    } }] }],
  };
}

describe('xDS HTTP filters, end to end', () => {
  it('enforces RBAC, header mutation and a rate limit from LDS, a per-route exemption from RDS, and a pushed policy change', { timeout: 60_000 }, async () => {
    const up = await httpUpstream('up');
    cleanup.push(() => up.close());
    const cp = new XdsControlPlane();
    await cp.start();
    cleanup.push(() => cp.kill());
    const port = await closedPort();
    cp.set('cds', [edsCluster('svc')]);
    cp.set('eds', [loadAssignment('svc', [{ port: up.port }])]);
    cp.set('lds', [listener(port, '/private')]);
    // /limited/ keeps the rate limit; every other route is exempt from it (a per-route LocalRateLimit enabled for none).
    const off = { '@type': `${F}.local_ratelimit.v3.LocalRateLimit`, stat_prefix: 'off' };
    cp.set('rds', [routeConfig('web-routes', [
      { match: { prefix: '/limited/' }, route: { cluster: 'svc' } },
      { match: { prefix: '/private/open' }, route: { cluster: 'svc' }, typed_per_filter_config: { 'envoy.filters.http.rbac': { '@type': `${F}.rbac.v3.RBACPerRoute` }, 'envoy.filters.http.local_ratelimit': off } },
      { match: { prefix: '/' }, route: { cluster: 'svc' }, typed_per_filter_config: { 'envoy.filters.http.local_ratelimit': off } },
    ])]);
    const shuttle = new ShuttleProcess(writeTempConfig(YAML.stringify(bootstrapFor(cp, 'filters')), 'yaml'), { configFlag: '--bootstrap', threads: 2 });
    cleanup.push(() => shuttle.stop());
    await shuttle.ready();

    const get = async (path: string, headers: Record<string, string> = {}) => {
      const res = await request(`http://127.0.0.1:${port}${path}`, { headers });
      await res.body.text();
      return { status: res.statusCode, mesh: res.headers['x-mesh'] };
    };
    await eventually(() => get('/').catch(() => ({ status: 0 })), (r) => r.status === 200, 15_000).catch((err) => {
      throw new Error(`${err.message}; nacks: ${JSON.stringify(cp.nacks().map((n) => n.error_detail))}; logs: ${JSON.stringify(shuttle.logs.filter((l) => l.level !== 'info').slice(-5))}`);
    });
    expect(await get('/public')).toEqual({ status: 200, mesh: 'shuttle' });
    expect((await get('/private/x')).status).toBe(403);
    expect((await get('/private/x', { 'x-role': 'admin' })).status).toBe(200);
    expect((await get('/private/open')).status).toBe(200);
    expect(up.requests.some((r) => r.url === '/private/x' && r.headers['x-role'] === undefined)).toBe(false);
    // The bucket holds 5 and refills one a minute: the 6th request to /limited/ within the test is refused.
    const statuses = [];
    for (let i = 0; i < 7; i++) statuses.push((await get('/limited/a')).status);
    expect(statuses.slice(0, 5)).toEqual([200, 200, 200, 200, 200]);
    expect(statuses.slice(5)).toEqual([429, 429]);
    // Other routes are not limited.
    for (let i = 0; i < 7; i++) expect((await get('/public')).status).toBe(200);

    // A new policy: /private is open, /secret is not.
    cp.set('lds', [listener(port, '/secret')]);
    await eventually(() => get('/private/x'), (r) => r.status === 200, 15_000);
    expect((await get('/secret/y')).status).toBe(403);
    expect(cp.nacks()).toEqual([]);
  });
});
