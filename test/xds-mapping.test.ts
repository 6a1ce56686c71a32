/**
 * The xDS mapping (src/xds/mapping.ts) and bootstrap reader, on resources encoded to protobuf
 * bytes and decoded the way Shuttle decodes a DiscoveryResponse (src/xds/protos.ts): what each
 * Envoy field becomes in Shuttle's config (checked by Shuttle's own schema), and that a field
 * Shuttle cannot honour is refused with its exact path.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { xdsConfigSchema } from '../src/config/schema.ts';
import { parseBootstrap, snakeKeys as snake } from '../src/xds/bootstrap.ts';
import { XdsFieldError } from '../src/xds/fields.ts';
import { mapCluster, mapListener, mapLoadAssignment, mapRouteConfiguration } from '../src/xds/mapping.ts';
import { decodeAny, TYPE, xdsType } from '../src/xds/protos.ts';
import { resolveTargets } from '../src/xds/dns.ts';

const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const ROUTER = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';
const HPO = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
const FAULT = 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault';

/** Encodes as a control plane would, decodes as Shuttle does. */
function wire(typeUrl: string, resource: Record<string, unknown>): Record<string, unknown> {
  const type = xdsType(typeUrl.slice(typeUrl.lastIndexOf('/') + 1));
  return decodeAny({ type_url: typeUrl, value: type.encode(type.fromObject(resource)).finish() });
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

const endpoint = (port: number, extra: Record<string, unknown> = {}) => ({ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } }, ...extra });

describe('xDS mapping', () => {
  it('maps an Istio-style EDS cluster with its policies into a valid Shuttle cluster', () => {
    const c = mapCluster(wire(TYPE.cluster, {
      name: 'outbound|9080||reviews.default.svc.cluster.local',
      type: 'EDS',
      eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' }, service_name: 'outbound|9080||reviews.default.svc.cluster.local' },
      connect_timeout: { seconds: 10 },
      lb_policy: 'LEAST_REQUEST',
      common_lb_config: { healthy_panic_threshold: { value: 30 } },
      circuit_breakers: { thresholds: [{ max_connections: { value: 4294967295 }, max_pending_requests: { value: 100 }, max_retries: { value: 3 } }] },
      outlier_detection: { consecutive_5xx: { value: 3 }, base_ejection_time: { seconds: 15 }, max_ejection_percent: { value: 50 }, interval: { seconds: 10 } },
      health_checks: [{ timeout: { seconds: 1 }, interval: { nanos: 500_000_000 }, unhealthy_threshold: { value: 2 }, healthy_threshold: { value: 1 }, http_health_check: { path: '/healthz', expected_statuses: [{ start: 200, end: 204 }] } }],
      metadata: { filter_metadata: { istio: { fields: { config: { string_value: '/apis/networking.istio.io/v1/...' } } } } },
    }));
    expect(c.edsName).toBe('outbound|9080||reviews.default.svc.cluster.local');
    expect(c.config).toEqual({
      name: 'outbound|9080||reviews.default.svc.cluster.local',
      lb_policy: 'least_connections',
      connect_timeout: '10000ms',
      panic_threshold: 30,
      circuit_breakers: { thresholds: [{ priority: 'default', max_connections: 4294967295, max_pending_requests: 100, max_retries: 3 }] },
      outlier_detection: { consecutive_5xx: 3, base_ejection_time: '15000ms', max_ejection_percent: 50 },
      health_check: { type: 'http', path: '/healthz', timeout: '1000ms', interval: '500ms', unhealthy_threshold: 2, healthy_threshold: 1, expected_statuses: [200, 201, 202, 203] },
    });
    const hosts = mapLoadAssignment(wire(TYPE.endpoint, {
      cluster_name: c.edsName,
      endpoints: [{ locality: { zone: 'a' }, lb_endpoints: [endpoint(9001), endpoint(9002, { load_balancing_weight: { value: 3 } }), endpoint(9003, { health_status: 'DRAINING' })] }],
    })).hosts;
    expect(hosts).toEqual([{ address: '127.0.0.1:9001' }, { address: '127.0.0.1:9002', weight: 3 }]);
    const parsed = xdsConfigSchema.safeParse({ version: 1, listeners: [], clusters: [{ ...c.config, hosts }] });
    expect(parsed.error?.issues ?? []).toEqual([]);
  });

  it('maps DNS clusters to names resolved by Shuttle', async () => {
    const c = mapCluster(wire(TYPE.cluster, {
      name: 'outbound|443||api.example.com', type: 'STRICT_DNS', dns_lookup_family: 'V4_ONLY', dns_refresh_rate: { seconds: 30 }, respect_dns_ttl: true,
      load_assignment: { cluster_name: 'api', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 'localhost', port_value: 8443 } } }, load_balancing_weight: { value: 2 } }, endpoint(9000)] }] },
    }));
    expect(c.dns).toEqual({ targets: [{ host: 'localhost', port: 8443, weight: 2 }, { host: '127.0.0.1', port: 9000, weight: 1 }], family: 4, refreshMs: 30_000, logical: false, respectTtl: true });
    expect(c.hosts).toBeUndefined();
    expect(c.edsName).toBeUndefined();
    // localhost is not in DNS: getaddrinfo answers it, without a TTL, so dns_refresh_rate applies.
    expect(await resolveTargets(c.dns!)).toEqual({ hosts: [{ address: '127.0.0.1:8443', weight: 2 }, { address: '127.0.0.1:9000' }], refreshMs: 30_000 });
    const logical = mapCluster(wire(TYPE.cluster, { name: 'l', type: 'LOGICAL_DNS', load_assignment: { endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 'localhost', port_value: 80 } } } }] }] } }));
    expect(logical.dns).toMatchObject({ logical: true, family: 0, refreshMs: 5000 });
    expect((await resolveTargets(logical.dns!)).hosts).toHaveLength(1);
    await expect(resolveTargets({ targets: [{ host: 'no-such-name.invalid', port: 1, weight: 1 }], family: 0, refreshMs: 5000, logical: false, respectTtl: false })).rejects.toThrow();
  });

  it('maps HTTP protocol options: the protocol to the hosts, HTTP/2 settings, the pool', () => {
    const options = (o: Record<string, unknown>) => mapCluster(wire(TYPE.cluster, { name: 'c', type: 'EDS', typed_extension_protocol_options: { [HPO]: { '@type': `type.googleapis.com/${HPO}`, ...o } } })).config;
    expect(options({ explicit_http_config: { http2_protocol_options: { initial_stream_window_size: { value: 1 << 20 } } }, common_http_protocol_options: { idle_timeout: { seconds: 30 }, max_requests_per_connection: { value: 100 } } }))
      .toMatchObject({ protocol: 'http2', http2: { initial_stream_window_size: 1 << 20 }, connection_pool: { idle_timeout: '30000ms', max_requests_per_connection: 100 } });
    expect(options({ explicit_http_config: { http_protocol_options: {} } })).toMatchObject({ protocol: 'http1' });
    expect(options({ auto_config: { http2_protocol_options: {} } })).toMatchObject({ protocol: 'auto', http2: {} });
  });

  it('maps an HTTP listener and its routes: matches, weighted clusters, retries, rewrites, headers, redirects, direct responses', () => {
    const l = mapListener(wire(TYPE.listener, {
      name: 'web',
      address: { socket_address: { address: '127.0.0.1', port_value: 8080 } },
      traffic_direction: 'OUTBOUND',
      filter_chains: [{ filters: [{ name: 'hcm', typed_config: { '@type': HCM, stat_prefix: 'web', codec_type: 'HTTP1', stream_idle_timeout: { seconds: 60 }, upgrade_configs: [{ upgrade_type: 'websocket' }], http2_protocol_options: { max_concurrent_streams: { value: 64 } }, rds: { route_config_name: 'r', config_source: { ads: {} } }, http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER } }] } }] }],
    }));
    expect(l).toEqual({ name: 'web', rdsName: 'r', config: { name: 'web', address: '127.0.0.1:8080', protocol: 'http', http: { codec: 'http1', stream_idle_timeout: '60000ms', http2: { max_concurrent_streams: 64 } } } });
    const r = mapRouteConfiguration(wire(TYPE.route, {
      name: 'r',
      virtual_hosts: [{
        name: 'vh', domains: ['reviews', 'reviews:9080'],
        routes: [
          { name: 'canary', match: { prefix: '/', headers: [{ name: 'x-user', string_match: { prefix: 'test-' } }, { name: 'x-debug', present_match: true, invert_match: true }], query_parameters: [{ name: 'v', string_match: { exact: '2' } }] }, route: { weighted_clusters: { clusters: [{ name: 'a', weight: { value: 90 } }, { name: 'b', weight: { value: 10 } }] }, timeout: { seconds: 3 }, retry_policy: { retry_on: 'connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes', num_retries: { value: 2 }, per_try_timeout: { nanos: 250_000_000 }, retriable_status_codes: [503], retry_host_predicate: [{ name: 'envoy.retry_host_predicates.previous_hosts' }], host_selection_retry_max_attempts: '5' }, max_stream_duration: { max_stream_duration: {}, grpc_timeout_header_max: {} } }, decorator: { operation: 'reviews:9080/*' } },
          { match: { prefix: '/api/', case_sensitive: { value: false } }, route: { cluster: 'a', prefix_rewrite: '/', host_rewrite_literal: 'api.internal' }, request_headers_to_add: [{ header: { key: 'x-env', value: 'prod' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' }], response_headers_to_remove: ['server'] },
          { match: { path: '/old' }, redirect: { https_redirect: true, host_redirect: 'new.example', path_redirect: '/new', response_code: 'PERMANENT_REDIRECT' } },
          { match: { safe_regex: { regex: '/health(z)?' } }, direct_response: { status: 200, body: { inline_string: 'ok' } } },
        ],
      }],
    }));
    expect(r.virtual_hosts).toEqual([{
      name: 'vh', domains: ['reviews', 'reviews:9080'],
      routes: [
        { name: 'canary', match: { prefix: '/', headers: [{ name: 'x-user', regex: '(?s)test-.*' }, { name: 'x-debug', invert: true, present: true }], query_params: [{ name: 'v', exact: '2' }] }, weighted_clusters: [{ name: 'a', weight: 90 }, { name: 'b', weight: 10 }], timeout: '3000ms', retry_policy: { retry_on: ['connect-failure', 'refused-stream', 'unavailable', 'cancelled', 'retriable-status-codes'], num_retries: 2, per_try_timeout: '250ms', retriable_status_codes: [503] } },
        { match: { prefix: '/api/', case_sensitive: false }, cluster: 'a', prefix_rewrite: '/', host_rewrite: 'api.internal', request_headers_to_add: [{ name: 'x-env', value: 'prod', append: false }], response_headers_to_remove: ['server'] },
        { match: { path: '/old' }, redirect: { scheme: 'https', host: 'new.example', path: '/new', status: 308 } },
        { match: { regex: '/health(z)?' }, direct_response: { status: 200, body: 'ok' } },
      ],
    }]);
    const parsed = xdsConfigSchema.safeParse({
      version: 1,
      listeners: [{ ...l.config, virtual_hosts: r.virtual_hosts }],
      clusters: [{ name: 'a', hosts: ['127.0.0.1:1'] }, { name: 'b', hosts: ['127.0.0.1:2'] }],
    });
    expect(parsed.error?.issues ?? []).toEqual([]);
  });

  it('maps header mutations of virtual hosts and route configurations after each route\'s own, and gRPC matches', () => {
    const header = (key: string, value: string) => ({ header: { key, value }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' });
    const r = mapRouteConfiguration(wire(TYPE.route, {
      name: 'r',
      request_headers_to_add: [header('x-level', 'config')],
      response_headers_to_remove: ['x-internal'],
      virtual_hosts: [{
        name: 'v', domains: ['*'], request_headers_to_add: [header('x-level', 'vhost')],
        routes: [{ match: { prefix: '/', grpc: {} }, route: { cluster: 'c' }, request_headers_to_add: [header('x-level', 'route')] }],
      }],
    }));
    expect((r.virtual_hosts[0].routes as unknown[])[0]).toEqual({
      match: { prefix: '/', headers: [{ name: 'content-type', regex: '(?i)application/grpc([+;].*)?' }] },
      cluster: 'c',
      request_headers_to_add: [{ name: 'x-level', value: 'route', append: false }, { name: 'x-level', value: 'vhost', append: false }, { name: 'x-level', value: 'config', append: false }],
      response_headers_to_remove: ['x-internal'],
    });
    const parsed = xdsConfigSchema.safeParse({ version: 1, listeners: [{ name: 'l', address: '127.0.0.1:1', protocol: 'http', virtual_hosts: r.virtual_hosts }], clusters: [{ name: 'c', hosts: ['127.0.0.1:1'] }] });
    expect(parsed.error?.issues ?? []).toEqual([]);
  });

  it('maps the fault filter, in the chain and per route or virtual host (Istio\'s VirtualService fault injection)', () => {
    const l = mapListener(wire(TYPE.listener, {
      name: 'l', address: { socket_address: { address: '127.0.0.1', port_value: 1 } },
      filter_chains: [{ filters: [{ name: 'hcm', typed_config: { '@type': HCM, rds: { route_config_name: 'r', config_source: { ads: {} } }, http_filters: [
        { name: 'envoy.filters.http.fault', typed_config: { '@type': FAULT, max_active_faults: { value: 50 }, abort_percent_runtime: 'fault.abort' } },
        { name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER } },
      ] } }] }],
    }));
    expect(l.config.http_filters).toEqual([{ name: 'fault', config: { max_active_faults: 50 } }]);
    const r = mapRouteConfiguration(wire(TYPE.route, { name: 'r', virtual_hosts: [{
      name: 'v', domains: ['*'],
      typed_per_filter_config: { 'envoy.filters.http.fault': { '@type': FAULT, delay: { fixed_delay: { nanos: 200_000_000 }, percentage: { numerator: 5000, denominator: 'TEN_THOUSAND' } } } },
      routes: [
        { match: { prefix: '/abort' }, route: { cluster: 'c' }, typed_per_filter_config: { 'envoy.filters.http.fault': { '@type': FAULT, abort: { http_status: 418, percentage: { numerator: 100 } }, headers: [{ name: 'x-test', exact_match: 'yes' }] } } },
        { match: { prefix: '/' }, route: { cluster: 'c' } },
      ],
    }] }));
    expect(r.virtual_hosts[0].routes).toEqual([
      { match: { prefix: '/abort' }, cluster: 'c', per_filter_config: { fault: { abort: { percentage: 100, http_status: 418 }, headers: [{ name: 'x-test', exact: 'yes' }] } } },
      { match: { prefix: '/' }, cluster: 'c', per_filter_config: { fault: { delay: { fixed_delay: '200ms', percentage: 50 } } } },
    ]);
    const parsed = xdsConfigSchema.safeParse({ version: 1, listeners: [{ ...l.config, virtual_hosts: r.virtual_hosts }], clusters: [{ name: 'c', hosts: ['127.0.0.1:1'] }] });
    expect(parsed.error?.issues ?? []).toEqual([]);
  });

  it('refuses what Shuttle cannot honour, naming the field', () => {
    const listener = (extra: Record<string, unknown>, hcm: Record<string, unknown> = {}) => wire(TYPE.listener, {
      name: 'l', address: { socket_address: { address: '127.0.0.1', port_value: 1 } },
      filter_chains: [{ filters: [{ name: 'hcm', typed_config: { '@type': HCM, rds: { route_config_name: 'r', config_source: { ads: {} } }, http_filters: [{ name: 'envoy.filters.http.router' }], ...hcm } }] }],
      ...extra,
    });
    const route = (r: Record<string, unknown>) => wire(TYPE.route, { name: 'r', virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { prefix: '/' }, ...r }] }] });
    const cases: [() => unknown, string][] = [
      [() => mapListener(listener({ listener_filters: [{ name: 'envoy.filters.listener.tls_inspector' }] })), 'listener_filters: listener filters (TLS/HTTP inspectors, original destination) are not supported yet'],
      [() => mapListener(listener({ use_original_dst: { value: true } })), 'use_original_dst: original-destination listeners (iptables capture) are not supported yet'],
      [() => mapListener(listener({}, { http_filters: [{ name: 'envoy.filters.http.lua' }, { name: 'envoy.filters.http.router' }] })), 'filter_chains[0].filters[0].typed_config.http_filters[0].typed_config: HTTP filter envoy.filters.http.lua is not supported (fault, rbac, jwt_authn, cors, local_ratelimit, header_mutation, compressor and the router are)'],
      [() => mapListener(listener({}, { http_filters: [] })), 'filter_chains[0].filters[0].typed_config.http_filters: the router must be the last HTTP filter (and there must be one)'],
      [() => mapListener(listener({}, { http_filters: [{ name: 'envoy.filters.http.router' }, { name: 'f', typed_config: { '@type': FAULT } }] })), 'filter_chains[0].filters[0].typed_config.http_filters[0].name: the router must be the last HTTP filter (and there must be one)'],
      [() => mapListener(listener({}, { http_filters: [{ name: 'f', typed_config: { '@type': FAULT, upstream_cluster: 'x' } }, { name: 'envoy.filters.http.router' }] })), 'filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.upstream_cluster: faults for one upstream cluster are not supported'],
      [() => mapListener(listener({}, { upgrade_configs: [{ upgrade_type: 'CONNECT' }] })), 'filter_chains[0].filters[0].typed_config.upgrade_configs[0].upgrade_type: CONNECT upgrades are not supported (websocket is)'],
      [() => mapListener(listener({}, { add_user_agent: { value: true } })), 'filter_chains[0].filters[0].typed_config.add_user_agent: not supported by Shuttle (yet): refused rather than ignored'],
      [() => mapCluster(wire(TYPE.cluster, { name: 'c', type: 'ORIGINAL_DST' })), 'type: ORIGINAL_DST clusters are not supported yet (EDS, STATIC, STRICT_DNS and LOGICAL_DNS are)'],
      [() => mapCluster(wire(TYPE.cluster, { name: 'c', type: 'LOGICAL_DNS', load_assignment: { endpoints: [{ lb_endpoints: [endpoint(1), endpoint(2)] }] } })), 'load_assignment: a LOGICAL_DNS cluster resolves one name'],
      [() => mapCluster(wire(TYPE.cluster, { name: 'c', type: 'EDS', lb_policy: 'CLUSTER_PROVIDED' })), 'lb_policy: CLUSTER_PROVIDED is not supported (ROUND_ROBIN, LEAST_REQUEST, RANDOM, RING_HASH, MAGLEV are)'],
      [() => mapCluster(wire(TYPE.cluster, { name: 'c', type: 'EDS', lb_policy: 'ROUND_ROBIN', maglev_lb_config: { table_size: { value: 7 } } })), 'maglev_lb_config: maglev_lb_config without lb_policy MAGLEV'],
      [() => mapCluster(wire(TYPE.cluster, { name: 'c', type: 'EDS', transport_socket: { name: 'envoy.transport_sockets.alts' } })), 'transport_socket: transport socket envoy.transport_sockets.alts is not supported (envoy.transport_sockets.tls with UpstreamTlsContext, or raw_buffer, is)'],
      [() => mapCluster(wire(TYPE.cluster, { name: 'c', type: 'EDS', typed_extension_protocol_options: { [HPO]: { '@type': `type.googleapis.com/${HPO}`, use_downstream_protocol_config: {} } } })), `typed_extension_protocol_options.${HPO}.use_downstream_protocol_config: not supported yet (explicit_http_config and auto_config are)`],
      [() => mapCluster(wire(TYPE.cluster, { name: 'c', type: 'EDS', typed_extension_protocol_options: { [HPO]: { '@type': `type.googleapis.com/${HPO}`, explicit_http_config: { http2_protocol_options: { hpack_table_size: { value: 0 } } } } } })), `typed_extension_protocol_options.${HPO}.explicit_http_config.http2_protocol_options.hpack_table_size: not supported by Shuttle (yet): refused rather than ignored`],
      [() => mapLoadAssignment(wire(TYPE.endpoint, { cluster_name: 'c', endpoints: [{ priority: 128, lb_endpoints: [endpoint(1)] }] })), 'endpoints[0].priority: Shuttle takes priorities from 0 to 127'],
      [() => mapLoadAssignment(wire(TYPE.endpoint, { cluster_name: 'c', endpoints: [{ lb_endpoints: [endpoint(1), endpoint(1)] }] })), 'endpoints[0].lb_endpoints[1].endpoint: 127.0.0.1:1 appears twice'],
      [() => mapLoadAssignment(wire(TYPE.endpoint, { cluster_name: 'c', endpoints: [{ lb_endpoints: [endpoint(1, { load_balancing_weight: { value: 5000 } })] }] })), 'endpoints[0].lb_endpoints[0].load_balancing_weight: Shuttle takes weights from 1 to 1000'],
      [() => mapLoadAssignment(wire(TYPE.endpoint, { cluster_name: 'c', endpoints: [{ lb_endpoints: [{ endpoint: { address: { pipe: { path: '/tmp/s' } } } }] }] })), 'endpoints[0].lb_endpoints[0].endpoint.address.socket_address: only socket addresses are supported (no pipe or internal addresses)'],
      [() => mapRouteConfiguration(route({ route: { cluster: 'c', hash_policy: [{ filter_state: { key: 'k' } }] } })), 'virtual_hosts[0].routes[0].route.hash_policy[0].filter_state: hash policy not supported (header, cookie, connection_properties, query_parameter are)'],
      [() => mapRouteConfiguration(route({ route: { cluster: 'c', retry_policy: { retry_on: '5xx,envoy-ratelimited' } } })), 'virtual_hosts[0].routes[0].route.retry_policy.retry_on: "envoy-ratelimited" is not supported (connect-failure, reset, refused-stream, 5xx, gateway-error, retriable-status-codes, cancelled, deadline-exceeded, resource-exhausted, unavailable, internal are)'],
      [() => mapRouteConfiguration(route({ route: { cluster: 'c', max_stream_duration: { max_stream_duration: { seconds: 5 } } } })), 'virtual_hosts[0].routes[0].route.max_stream_duration.max_stream_duration: max_stream_duration limits are not supported yet'],
      [() => mapRouteConfiguration(route({ match: { safe_regex: { regex: '/x' } }, route: { cluster: 'c', prefix_rewrite: '/' } })), 'virtual_hosts[0].routes[0].route.prefix_rewrite: prefix_rewrite is supported with a prefix match only'],
      [() => mapRouteConfiguration(route({ match: { prefix: '/', headers: [{ name: 'x', range_match: { start: 1, end: 2 } }] }, route: { cluster: 'c' } })), 'virtual_hosts[0].routes[0].match.headers[0].range_match: range matches are not supported'],
      [() => mapRouteConfiguration(route({ route: { cluster: 'c' }, typed_per_filter_config: { 'envoy.filters.http.cors': { '@type': ROUTER } } })), 'virtual_hosts[0].routes[0].typed_per_filter_config.envoy.filters.http.cors: per-route config type.googleapis.com/envoy.extensions.filters.http.router.v3.Router is not supported (HTTPFault, RBACPerRoute, CorsPolicy, LocalRateLimit, HeaderMutationPerRoute are)'],
    ];
    for (const [fn, message] of cases) expect(refusal(fn)).toBe(message);
  });

  it('hostile resources: whatever a control plane sends, a mapper returns or refuses with a path, never crashes', () => {
    // Values of every shape under the field names the mappers read, nested a few levels.
    const names = ['name', 'type', 'address', 'socket_address', 'port_value', 'filter_chains', 'filters', 'typed_config', '@type', 'rds', 'route_config', 'virtual_hosts',
      'routes', 'match', 'prefix', 'headers', 'route', 'cluster', 'weighted_clusters', 'clusters', 'weight', 'value', 'retry_policy', 'retry_on', 'endpoints', 'lb_endpoints',
      'endpoint', 'load_assignment', 'cluster_name', 'domains', 'http_filters', 'seconds', 'nanos', 'timeout', 'direct_response', 'redirect', 'string_match', 'exact'];
    const leaf = fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.constantFrom(HCM, ROUTER, FAULT, 'EDS', 'STATIC', 'STRICT_DNS', '/'));
    const value = fc.letrec((tie) => ({
      node: fc.oneof({ depthSize: 'small' }, leaf, fc.array(tie('node'), { maxLength: 3 }), fc.dictionary(fc.constantFrom(...names), tie('node'), { maxKeys: 5 })),
    })).node;
    const resource = fc.dictionary(fc.constantFrom(...names), value, { maxKeys: 6 });
    fc.assert(fc.property(resource, (r) => {
      for (const map of [mapCluster, mapListener, mapLoadAssignment, mapRouteConfiguration] as ((m: Record<string, unknown>) => unknown)[]) {
        try {
          map(r);
        } catch (err) {
          if (!(err instanceof XdsFieldError)) throw err;
          expect(err.path.length).toBeGreaterThan(0);
        }
      }
    }), { numRuns: 2000 });
    // And random bytes as any resource type: decoding throws (a NACK naming the index), nothing else.
    fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), fc.constantFrom(...Object.values(TYPE)), (bytes, url) => {
      try {
        decodeAny({ type_url: url, value: bytes });
      } catch (err) {
        expect(err).toBeInstanceOf(Error);
      }
    }), { numRuns: 2000 });
  });

  it('refuses bytes that do not decode', () => {
    expect(() => decodeAny({ type_url: TYPE.cluster, value: Buffer.from([0x0a, 0xff, 0xff, 0xff]) })).toThrow();
    expect(() => decodeAny({ type_url: 'type.googleapis.com/no.such.Type', value: Buffer.alloc(0) })).toThrow('unknown resource type');
  });
});

describe('xDS bootstrap', () => {
  const bootstrap = () => ({
    node: { id: 'sidecar~10.0.0.1~pod.ns~ns.svc.cluster.local', cluster: 'app.ns', metadata: { ISTIO_VERSION: '1.24', LABELS: { app: 'x' } } },
    dynamicResources: {
      adsConfig: { apiType: 'GRPC', transportApiVersion: 'V3', grpcServices: [{ envoyGrpc: { clusterName: 'xds-grpc' } }], setNodeOnFirstMessageOnly: true },
      cdsConfig: { ads: {}, resourceApiVersion: 'V3' },
      ldsConfig: { ads: {}, resourceApiVersion: 'V3' },
    },
    staticResources: {
      clusters: [
        { name: 'xds-grpc', type: 'STRICT_DNS', connectTimeout: '1s', loadAssignment: { clusterName: 'xds-grpc', endpoints: [{ lbEndpoints: [{ endpoint: { address: { socketAddress: { address: 'istiod.istio-system.svc', portValue: 15010 } } } }] }] }, typedExtensionProtocolOptions: {} },
        { name: 'prometheus_stats', type: 'STATIC', connectTimeout: '0.250s', loadAssignment: { clusterName: 'prometheus_stats', endpoints: [{ lbEndpoints: [{ endpoint: { address: { socketAddress: { address: '127.0.0.1', portValue: 15000 } } } }] }] } },
      ],
    },
    admin: { address: { socketAddress: { address: '127.0.0.1', portValue: 15000 } }, accessLogPath: '/dev/null' },
    statsConfig: { useAllDefaultTags: false },
  });

  it('reads the honoured subset (camelCase or snake_case) and reports every other field by its path', () => {
    const parsed = parseBootstrap(snake(bootstrap()));
    expect(parsed.ads).toEqual({ cluster: 'xds-grpc', target: 'istiod.istio-system.svc:15010', setNodeOnFirstMessageOnly: true, delta: false, initialFetchTimeoutMs: 15_000, cds: true, lds: true });
    expect(parsed.nodeId).toBe('sidecar~10.0.0.1~pod.ns~ns.svc.cluster.local');
    expect(parsed.node.metadata).toEqual({ fields: { ISTIO_VERSION: { string_value: '1.24' }, LABELS: { struct_value: { fields: { app: { string_value: 'x' } } } } } });
    expect(parsed.clusters).toEqual([{ name: 'prometheus_stats', lb_policy: 'round_robin', connect_timeout: '250ms', hosts: [{ address: '127.0.0.1:15000' }] }]);
    expect(parsed.admin).toBe('127.0.0.1:15000');
    expect(parsed.warnings.map((w) => w.path).sort()).toEqual(['admin.access_log_path', 'static_resources.clusters[0].connect_timeout', 'static_resources.clusters[0].typed_extension_protocol_options', 'stats_config']);
  });

  it('refuses what it cannot work with', () => {
    const b = snake(bootstrap()) as any;
    b.dynamic_resources.ads_config.grpc_services = [{ google_grpc: { target_uri: 'istiod:15012' } }];
    expect(refusal(() => parseBootstrap(b))).toBe('dynamic_resources.ads_config.grpc_services[0].envoy_grpc: only envoy_grpc services are supported (google_grpc is not)');
    const c = snake(bootstrap()) as any;
    c.static_resources.clusters[0].transport_socket = { name: 'tls', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', common_tls_context: { tls_certificate_sds_secret_configs: [{ name: 'default' }] } } };
    expect(refusal(() => parseBootstrap(c))).toBe('static_resources.clusters[0].transport_socket.typed_config.common_tls_context.tls_certificate_sds_secret_configs: SDS secrets for the xDS server are not supported yet (give files)');
  });
});

describe('DNS clusters with TTLs', () => {
  it('resolves at the cluster\'s own DNS servers and refreshes when the TTL runs out (respect_dns_ttl)', async () => {
    const { TestDnsServer } = await import('./support/dns-server.ts');
    const server = new TestDnsServer();
    await server.start();
    try {
      server.records.set('svc.mesh.test', { addresses: ['127.0.0.2', '127.0.0.3'], ttl: 7 });
      const c = mapCluster(wire(TYPE.cluster, {
        name: 'svc', type: 'STRICT_DNS', respect_dns_ttl: true, dns_refresh_rate: { seconds: 30 }, dns_failure_refresh_rate: { base_interval: { seconds: 2 }, max_interval: { seconds: 10 } },
        typed_dns_resolver_config: { name: 'envoy.network.dns_resolver.cares', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig', resolvers: [{ socket_address: { address: '127.0.0.1', port_value: server.port } }] } },
        load_assignment: { cluster_name: 'svc', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 'svc.mesh.test', port_value: 8080 } } } }] }] },
      }));
      expect(c.dns).toMatchObject({ respectTtl: true, failureRefreshMs: 2000, servers: [server.address] });
      expect(await resolveTargets(c.dns!)).toEqual({ hosts: [{ address: '127.0.0.2:8080' }, { address: '127.0.0.3:8080' }], refreshMs: 7000 });
      // Without respect_dns_ttl: dns_refresh_rate, whatever the TTL.
      expect((await resolveTargets({ ...c.dns!, respectTtl: false })).refreshMs).toBe(30_000);
      // A name the cluster's servers do not know does not resolve (no fallback to the system's).
      await expect(resolveTargets({ ...c.dns!, targets: [{ host: 'other.mesh.test', port: 1, weight: 1 }] })).rejects.toThrow(/other\.mesh\.test/);
    } finally {
      server.close();
    }
  });
});
