/**
 * HTTP filters from xDS (src/xds/http-filters.ts): Istio-style RBAC, JWT, CORS, local rate limit,
 * header mutation and compressor configs, encoded as a control plane sends them and decoded as
 * Shuttle does, become Shuttle filter configs that its own schema accepts; what Shuttle cannot do
 * is refused with the field's path.
 */
import { describe, expect, it } from 'vitest';
import { xdsConfigSchema } from '../src/config/schema.ts';
import { XdsFieldError } from '../src/xds/fields.ts';
import { mapListener, mapRouteConfiguration } from '../src/xds/mapping.ts';
import { decodeAny, TYPE, xdsType } from '../src/xds/protos.ts';

const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const F = 'type.googleapis.com/envoy.extensions.filters.http';
const ROUTER = { name: 'envoy.filters.http.router', typed_config: { '@type': `${F}.router.v3.Router` } };

function wire(typeUrl: string, resource: Record<string, unknown>): Record<string, unknown> {
  const type = xdsType(typeUrl.slice(typeUrl.lastIndexOf('/') + 1));
  return decodeAny({ type_url: typeUrl, value: type.encode(type.fromObject(resource)).finish() });
}

const routes = (extra: Record<string, unknown> = {}) => ({ name: 'r', virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'c' }, ...extra }] }] });

/** A listener whose HCM runs `filters` then the router, with inline routes. */
function listenerWith(filters: Record<string, unknown>[], routeExtra: Record<string, unknown> = {}) {
  return wire(TYPE.listener, {
    name: 'l', address: { socket_address: { address: '127.0.0.1', port_value: 1 } },
    filter_chains: [{ filters: [{ name: 'hcm', typed_config: { '@type': HCM, route_config: routes(routeExtra), http_filters: [...filters, ROUTER] } }] }],
  });
}

/** The mapped listener's filters, after Shuttle's own schema parsed them. */
function shuttleFilters(filters: Record<string, unknown>[], routeExtra: Record<string, unknown> = {}) {
  const mapped = mapListener(listenerWith(filters, routeExtra));
  const parsed = xdsConfigSchema.safeParse({ version: 1, listeners: [mapped.config], clusters: [{ name: 'c', hosts: ['127.0.0.1:2'] }, { name: 'jwks', hosts: ['127.0.0.1:3'] }] });
  if (!parsed.success) throw new Error(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
  return parsed.data.listeners[0];
}

const refusal = (fn: () => unknown): string => {
  try {
    fn();
  } catch (err) {
    if (err instanceof XdsFieldError) return err.message;
    throw err;
  }
  throw new Error('not refused');
};
const at = 'filter_chains[0].filters[0].typed_config.http_filters[0].typed_config';

describe('xDS HTTP filters', () => {
  it('maps an Istio AuthorizationPolicy (RBAC ALLOW by SPIFFE identity, method and path)', () => {
    const l = shuttleFilters([{ name: 'envoy.filters.http.rbac', typed_config: { '@type': `${F}.rbac.v3.RBAC`, rules: { action: 'ALLOW', policies: {
      'ns[default]-policy[allow-get]-rule[0]': {
        permissions: [{ and_rules: { rules: [{ or_rules: { rules: [{ header: { name: ':method', string_match: { exact: 'GET' } } }] } }, { or_rules: { rules: [{ url_path: { path: { prefix: '/api/' } } }] } }] } }],
        principals: [{ and_ids: { ids: [{ or_ids: { ids: [{ authenticated: { principal_name: { exact: 'spiffe://cluster.local/ns/default/sa/sleep' } } }] } }] } }],
      },
      'deny-range': { permissions: [{ any: true }], principals: [{ remote_ip: { address_prefix: '10.1.0.0', prefix_len: { value: 16 } } }] },
    } }, shadow_rules_stat_prefix: 'istio_dry_run_allow_' } }]);
    expect(l.http_filters).toHaveLength(1);
    const cfg = l.http_filters[0].config as any;
    expect(cfg.action).toBe('ALLOW');
    expect(cfg.shadow).toBe(false);
    const p = cfg.policies['ns[default]-policy[allow-get]-rule[0]'];
    expect(p.permissions[0].and_rules[1].or_rules[0]).toEqual({ path: { prefix: '/api/' } });
    expect(p.permissions[0].and_rules[0].or_rules[0].header).toMatchObject({ name: ':method', exact: 'GET' });
    expect(p.principals[0].and_ids[0].or_ids[0]).toEqual({ authenticated: { exact: 'spiffe://cluster.local/ns/default/sa/sleep' } });
    expect(cfg.policies['deny-range'].principals[0]).toEqual({ source_ip: '10.1.0.0/16' });
  });

  it('RBAC: shadow rules are shadow, no rules is no filter, and what cannot be checked is refused', () => {
    const shadow = shuttleFilters([{ name: 'rbac', typed_config: { '@type': `${F}.rbac.v3.RBAC`, shadow_rules: { action: 'DENY', policies: { p: { permissions: [{ any: true }], principals: [{ any: true }] } } } } }]);
    expect(shadow.http_filters[0].config).toMatchObject({ action: 'DENY', shadow: true });
    expect(shuttleFilters([{ name: 'rbac', typed_config: { '@type': `${F}.rbac.v3.RBAC` } }]).http_filters).toEqual([]);
    expect(refusal(() => mapListener(listenerWith([{ name: 'rbac', typed_config: { '@type': `${F}.rbac.v3.RBAC`, rules: { policies: { p: {
      permissions: [{ any: true }], principals: [{ metadata: { filter: 'istio_authn', path: [{ key: 'request.auth.claims' }], value: { string_match: { exact: 'x' } } } }],
    } } } } }])))).toBe(`${at}.rules.policies.p.principals[0].metadata: RBAC principal metadata is not supported (any, and_ids, or_ids, not_id, header, authenticated, source_ip, direct_remote_ip, remote_ip are)`);
    expect(refusal(() => mapListener(listenerWith([{ name: 'rbac', typed_config: { '@type': `${F}.rbac.v3.RBAC`, rules: { action: 'LOG' } } }])))).toBe(`${at}.rules.action: LOG is not supported (ALLOW and DENY are)`);
  });

  it('maps an Istio RequestAuthentication (jwt_authn: remote JWKS, one provider or no token)', () => {
    const l = shuttleFilters([{ name: 'envoy.filters.http.jwt_authn', typed_config: { '@type': `${F}.jwt_authn.v3.JwtAuthentication`,
      providers: { 'origins-0': {
        issuer: 'https://issuer.example.com', audiences: ['api'],
        remote_jwks: { http_uri: { uri: 'https://issuer.example.com/jwks.json', cluster: 'jwks', timeout: { seconds: 5 } }, cache_duration: { seconds: 300 } },
        forward: true, payload_in_metadata: 'https://issuer.example.com', claim_to_headers: [{ header_name: 'X-Sub', claim_name: 'sub' }],
      } },
      rules: [{ match: { prefix: '/' }, requires: { requires_any: { requirements: [{ provider_name: 'origins-0' }, { allow_missing: {} }] } } }],
      bypass_cors_preflight: true,
    } }]);
    const cfg = l.http_filters[0].config as any;
    expect(cfg.providers['origins-0']).toMatchObject({ issuer: 'https://issuer.example.com', audiences: ['api'], forward: true, remote_jwks: { uri: 'https://issuer.example.com/jwks.json', cluster: 'jwks', timeout: 5000, cache_duration: 300_000 }, claim_to_headers: [{ header_name: 'x-sub', claim_name: 'sub' }] });
    expect(cfg.rules).toEqual([{ match: { prefix: '/' }, requires: 'origins-0', allow_missing: true }]);
    expect(refusal(() => mapListener(listenerWith([{ name: 'jwt', typed_config: { '@type': `${F}.jwt_authn.v3.JwtAuthentication`,
      providers: { a: { local_jwks: { inline_string: '{"keys":[]}' } } },
      rules: [{ match: { prefix: '/' }, requires: { requires_any: { requirements: [{ provider_name: 'a' }, { allow_missing_or_failed: {} }] } } }],
    } }])))).toBe(`${at}.rules[0].requires.requires_any.requirements[1].allow_missing_or_failed: letting requests with an invalid token through is not supported (allow_missing is)`);
  });

  it('maps CORS: the filter, with each route\'s CorsPolicy', () => {
    const l = shuttleFilters([{ name: 'envoy.filters.http.cors', typed_config: { '@type': `${F}.cors.v3.Cors` } }], {
      typed_per_filter_config: { 'envoy.filters.http.cors': { '@type': `${F}.cors.v3.CorsPolicy`, allow_origin_string_match: [{ exact: 'https://app.example.com' }, { suffix: '.example.org' }], allow_methods: 'GET,POST', allow_headers: 'content-type, x-tenant', max_age: '600', allow_credentials: { value: true } } },
    });
    expect(l.http_filters[0]).toMatchObject({ name: 'cors', config: { allow_origin: [] } });
    const perRoute = (l.virtual_hosts![0].routes[0] as any).per_filter_config.cors;
    expect(perRoute).toMatchObject({ allow_origin: [{ exact: 'https://app.example.com' }, { suffix: '.example.org' }], allow_methods: ['GET', 'POST'], allow_headers: ['content-type', 'x-tenant'], max_age: 600_000, allow_credentials: true });
  });

  it('maps a local rate limit enforced on every request; one enabled for none is no filter; part of the requests is refused', () => {
    const limit = (extra: Record<string, unknown>) => ({ name: 'envoy.filters.http.local_ratelimit', typed_config: { '@type': `${F}.local_ratelimit.v3.LocalRateLimit`, stat_prefix: 'http_local_rate_limiter',
      token_bucket: { max_tokens: 10, tokens_per_fill: { value: 5 }, fill_interval: { seconds: 1 } }, ...extra } });
    const full = { default_value: { numerator: 100, denominator: 'HUNDRED' }, runtime_key: 'k' };
    const l = shuttleFilters([limit({ filter_enabled: full, filter_enforced: full, status: { code: 'ServiceUnavailable' }, enable_x_ratelimit_headers: 'DRAFT_VERSION_03' })]);
    expect(l.http_filters[0].config).toMatchObject({ token_bucket: { max_tokens: 10, tokens_per_fill: 5, fill_interval: 1000 }, status: 503, response_headers: true });
    expect(shuttleFilters([limit({})]).http_filters).toEqual([]);
    expect(refusal(() => mapListener(listenerWith([limit({ filter_enabled: { default_value: { numerator: 50 } }, filter_enforced: full })])))).toBe(`${at}.filter_enabled: a rate limit enabled for part of the requests is not supported`);
  });

  it('maps header mutation and a gzip compressor', () => {
    const l = shuttleFilters([
      { name: 'hm', typed_config: { '@type': `${F}.header_mutation.v3.HeaderMutation`, mutations: {
        request_mutations: [{ append: { header: { key: 'x-from-mesh', value: 'yes' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' } }, { remove: 'X-Debug' }],
        response_mutations: [{ append: { header: { key: 'x-served-by', value: 'shuttle' } } }],
      } } },
      { name: 'gzip', typed_config: { '@type': `${F}.compressor.v3.Compressor`,
        compressor_library: { name: 'gzip', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.compression.gzip.compressor.v3.Gzip', compression_level: 'BEST_SPEED', memory_level: { value: 9 } } },
        response_direction_config: { common_config: { min_content_length: { value: 100 }, content_type: ['application/json'] }, disable_on_etag_header: true } } },
    ]);
    expect(l.http_filters[0]).toMatchObject({ name: 'header_mutation', config: { request_headers_to_add: [{ name: 'x-from-mesh', value: 'yes', append: false }], request_headers_to_remove: ['x-debug'], response_headers_to_add: [{ name: 'x-served-by', value: 'shuttle', append: true }] } });
    expect(l.http_filters[1]).toMatchObject({ name: 'compressor', config: { algorithms: ['gzip'], level: 1, min_content_length: 100, content_types: ['application/json'], disable_on_etag_header: true } });
  });

  it('a per-route RBACPerRoute without rules turns RBAC off on that route', () => {
    const r = mapRouteConfiguration(wire(TYPE.route, routes({ typed_per_filter_config: { 'envoy.filters.http.rbac': { '@type': `${F}.rbac.v3.RBACPerRoute` } } })));
    expect((r.virtual_hosts[0] as any).routes[0].per_filter_config).toEqual({ rbac: { disabled: true } });
  });
});

describe('xDS consistent hashing', () => {
  it('maps RING_HASH and MAGLEV clusters and route hash policies; a generated cookie is refused', async () => {
    const { mapCluster } = await import('../src/xds/mapping.ts');
    const eds = { type: 'EDS', eds_cluster_config: { eds_config: { ads: {} } } };
    expect(mapCluster(wire(TYPE.cluster, { name: 'r', ...eds, lb_policy: 'RING_HASH', ring_hash_lb_config: { minimum_ring_size: { value: 2048 }, hash_function: 'XX_HASH' } })).config)
      .toMatchObject({ lb_policy: 'ring_hash', ring_hash: { minimum_ring_size: 2048 } });
    expect(mapCluster(wire(TYPE.cluster, { name: 'm', ...eds, lb_policy: 'MAGLEV', maglev_lb_config: { table_size: { value: 5 } } })).config)
      .toMatchObject({ lb_policy: 'maglev', maglev: { table_size: 5 } });
    const r = mapRouteConfiguration(wire(TYPE.route, routes({ route: { cluster: 'c', hash_policy: [
      { header: { header_name: 'X-User' } }, { cookie: { name: 'session', path: '/' }, terminal: true }, { connection_properties: { source_ip: true } }, { query_parameter: { name: 'tenant' } },
    ] } })));
    expect((r.virtual_hosts[0] as any).routes[0].hash_policy).toEqual([{ header: { name: 'x-user' } }, { cookie: { name: 'session' }, terminal: true }, { source_ip: true }, { query_parameter: { name: 'tenant' } }]);
    expect(refusal(() => mapRouteConfiguration(wire(TYPE.route, routes({ route: { cluster: 'c', hash_policy: [{ cookie: { name: 's', ttl: { seconds: 60 } } }] } })))))
      .toBe('virtual_hosts[0].routes[0].route.hash_policy[0].cookie.ttl: generated cookies (a ttl) are not supported: Shuttle hashes a cookie the client sends');
  });
});

describe('xDS TLS mapping', () => {
  const TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3';
  it('maps inline and file certificates, SDS references, versions, ALPN and SANs; refuses what it cannot check', async () => {
    const { mapCluster } = await import('../src/xds/mapping.ts');
    const l = mapListener(wire(TYPE.listener, {
      name: 'l', address: { socket_address: { address: '127.0.0.1', port_value: 1 } },
      filter_chains: [{
        transport_socket: { name: 'envoy.transport_sockets.tls', typed_config: { '@type': `${TLS}.DownstreamTlsContext`, require_client_certificate: { value: true }, common_tls_context: {
          tls_certificates: [{ certificate_chain: { filename: '/etc/certs/cert.pem' }, private_key: { inline_string: 'KEY PEM' } }],
          tls_certificate_sds_secret_configs: [{ name: 'default', sds_config: { ads: {} } }],
          validation_context: { trusted_ca: { inline_bytes: Buffer.from('CA PEM').toString('base64') } },
          tls_params: { tls_minimum_protocol_version: 'TLSv1_3', cipher_suites: ['ECDHE-ECDSA-AES128-GCM-SHA256'] },
          alpn_protocols: ['h2', 'http/1.1'],
        } } },
        filters: [{ name: 'tcp', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', stat_prefix: 's', cluster: 'c' } }],
      }],
    }));
    const tls = l.config.tls as any;
    expect(tls.certificates[0].cert).toBe('/etc/certs/cert.pem');
    expect(tls.certificates[0].key).toMatch(/^xds-inline:[0-9a-f]{32}$/);
    expect(l.tls!.inline[tls.certificates[0].key]).toBe('KEY PEM');
    expect(tls.certificates[1]).toEqual({ cert: 'xds-sds:default/cert', key: 'xds-sds:default/key' });
    expect(l.tls!.sds).toEqual(new Set(['default']));
    expect(l.tls!.inline[tls.client_ca]).toBe('CA PEM');
    expect(tls).toMatchObject({ require_client_cert: true, min_version: 'TLSv1.3', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256', alpn: ['h2', 'http/1.1'] });

    const eds = { type: 'EDS', eds_cluster_config: { eds_config: { ads: {} } } };
    const plain = mapCluster(wire(TYPE.cluster, { name: 'p', ...eds, transport_socket: { name: 'envoy.transport_sockets.tls', typed_config: { '@type': `${TLS}.UpstreamTlsContext`, sni: 'db.internal' } } }));
    expect(plain.config.tls).toEqual({ sni: 'db.internal', insecure_skip_verify: true }); // Envoy verifies nothing without a validation context
    expect(refusal(() => mapCluster(wire(TYPE.cluster, { name: 'c', ...eds, transport_socket: { name: 'envoy.transport_sockets.tls', typed_config: { '@type': `${TLS}.UpstreamTlsContext`, common_tls_context: {
      tls_certificate_sds_secret_configs: [{ name: 'default', sds_config: { api_config_source: { api_type: 'GRPC', grpc_services: [{ envoy_grpc: { cluster_name: 'sds-grpc' } }] } } }],
    } } } })))).toBe('transport_socket.typed_config.common_tls_context.tls_certificate_sds_secret_configs[0].sds_config.api_config_source: only { ads: {} } is supported (secrets over the ADS stream; Istio agent\'s SDS socket is not supported yet)');
    expect(refusal(() => mapCluster(wire(TYPE.cluster, { name: 'c', ...eds, transport_socket_matches: [{ name: 'tlsMode-istio', match: {}, transport_socket: { name: 'envoy.transport_sockets.raw_buffer' } }] }))))
      .toBe('transport_socket_matches: per-endpoint transport sockets are not supported (Istio\'s auto mTLS: give the cluster one transport_socket)');
  });

  it('maps an SDS Secret, checking that the key matches the certificate', async () => {
    const { mapSecret } = await import('../src/xds/tls.ts');
    const { makePki } = await import('./support/certs.ts');
    const pki = makePki();
    pki.issue('a', { cn: 'a', sans: 'DNS:a' });
    pki.issue('b', { cn: 'b', sans: 'DNS:b' });
    const secret = (cert: string, key: string) => wire('type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret', { name: 's', tls_certificate: { certificate_chain: { inline_string: pki.read(cert) }, private_key: { inline_string: pki.read(key) } } });
    const ok = mapSecret(secret('a.pem', 'a.key'));
    expect(ok).toMatchObject({ name: 's', cert: pki.read('a.pem'), key: pki.read('a.key') });
    expect(ok.digest).toMatch(/^[0-9a-f]{16}$/);
    expect(refusal(() => mapSecret(secret('a.pem', 'b.key')))).toBe('tls_certificate: private_key does not match certificate_chain');
  });
});
