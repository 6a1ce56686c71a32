/**
 * The one place Envoy's v3 resources become Shuttle config (the table is in docs/xds.md).
 * Each mapper reads a decoded resource field by field (fields.ts) and returns Shuttle config in
 * the config file's own shape (durations as "250ms", addresses as "host:port"), validated later by
 * the same schema as a file. A field Shuttle cannot honour throws XdsFieldError with its path:
 * the resource is NACKed, never half-applied.
 */
import { Fields, XdsFieldError, type Message } from './fields.ts';
import { headerMatcher, headersToAdd, ms, safeRegex, stringMatcher } from './envoy-types.ts';
import { mapHttpFilters, perFilterConfig } from './http-filters.ts';
import { downstreamTls, noTlsNeeds, upstreamTls, type TlsNeeds } from './tls.ts';
import { RETRY_ON } from '../config/route-schema.ts';

type Raw = Record<string, unknown>;

const HCM_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const TCP_PROXY_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy';
const ROUTER_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';
const PREVIOUS_HOSTS = 'envoy.retry_host_predicates.previous_hosts';


// ---- addresses --------------------------------------------------------------------------------

/** core.v3.Address with a TCP socket_address → "host:port". */
export function socketAddress(f: Fields): string {
  const sa = f.message('socket_address') ?? f.fail('socket_address', 'only socket addresses are supported (no pipe or internal addresses)');
  f.done();
  const host = sa.requiredStr('address');
  const port = sa.num('port_value') ?? sa.fail('port_value', 'a port number is required (named ports are not supported)');
  const protocol = sa.str('protocol');
  if (protocol !== undefined && protocol !== 'TCP') sa.fail('protocol', `${protocol} is not supported (TCP only)`);
  sa.skip('ipv4_compat');
  sa.done();
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new XdsFieldError(sa.at('port_value'), 'expected a port from 0 to 65535');
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

// ---- clusters and endpoints -------------------------------------------------------------------

/** A mapped cluster: Shuttle config less its hosts, and where the hosts come from. */
export interface MappedCluster {
  name: string;
  /** EDS: the ClusterLoadAssignment name to ask for; STATIC: undefined (hosts are inline). */
  edsName?: string;
  hosts?: Raw[];
  /** STRICT_DNS / LOGICAL_DNS: the names to resolve (src/xds/dns.ts) into hosts. */
  dns?: DnsTargets;
  config: Raw;
  /** TLS to the hosts: inline PEM it carries, SDS secrets it waits for. */
  tls?: TlsNeeds;
}

/**
 * The DNS servers a cluster names: typed_dns_resolver_config (c-ares, Envoy's) or the older
 * dns_resolvers; undefined: the system's (getaddrinfo for names in /etc/hosts).
 */
function dnsServers(f: Fields): string[] | undefined {
  const typed = f.message('typed_dns_resolver_config');
  const legacy = f.list('dns_resolvers');
  if (f.has('dns_resolution_config')) f.fail('dns_resolution_config', 'deprecated: use typed_dns_resolver_config');
  f.skip('use_tcp_for_dns_lookups');
  if (legacy.length > 0) return legacy.map(socketAddress);
  if (!typed) return undefined;
  typed.skip('name');
  const cares = typed.requiredMessage('typed_config');
  if (cares.str('@type') !== CARES_TYPE) cares.fail('@type', `DNS resolver ${cares.str('@type')} is not supported (${CARES_TYPE} is)`);
  const servers = cares.list('resolvers').map(socketAddress);
  if (cares.bool('use_resolvers_as_fallback')) cares.fail('use_resolvers_as_fallback', 'resolvers as a fallback only are not supported');
  // Query tuning of c-ares (Node's resolver is c-ares too: its defaults apply).
  cares.skip('dns_resolver_options', 'filter_unroutable_families', 'udp_max_queries', 'query_timeout_seconds', 'query_tries', 'rotate_nameservers', 'edns0_max_payload_size', 'max_udp_channel_duration');
  cares.done();
  typed.done();
  return servers.length > 0 ? servers : undefined;
}

const CARES_TYPE = 'type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig';

export interface DnsTargets {
  /** respect_dns_ttl: resolve again when the shortest TTL of the answers runs out (at least 1 s). */
  respectTtl: boolean;
  /** dns_failure_refresh_rate.base_interval: a failed lookup is tried again this soon. */
  failureRefreshMs?: number;
  /** DNS servers ("ip:port") of typed_dns_resolver_config (c-ares) or dns_resolvers. */
  servers?: string[];
  targets: { host: string; port: number; weight: number }[];
  /** 0: IPv4 and IPv6; 4 or 6: that family only (dns_lookup_family). */
  family: 0 | 4 | 6;
  /** How often the names are resolved again (dns_refresh_rate; Envoy: 5 s). */
  refreshMs: number;
  /** LOGICAL_DNS: one host, the first address of the first name (STRICT_DNS: every address). */
  logical: boolean;
}

const DNS_FAMILIES: Record<string, 0 | 4 | 6> = { AUTO: 0, V4_ONLY: 4, V6_ONLY: 6, V4_PREFERRED: 0, ALL: 0 };

const LB_POLICIES: Record<string, string> = { ROUND_ROBIN: 'round_robin', LEAST_REQUEST: 'least_connections', RANDOM: 'random', RING_HASH: 'ring_hash', MAGLEV: 'maglev' };

export function mapCluster(resource: Message, path = ''): MappedCluster {
  const f = new Fields(resource, path);
  const name = f.requiredStr('name');
  const config: Raw = { name };
  const type = f.str('type') ?? 'STATIC';
  let edsName: string | undefined;
  let hosts: Raw[] | undefined;
  let dns: DnsTargets | undefined;
  if (type === 'EDS') {
    const eds = f.message('eds_cluster_config');
    if (eds) {
      const source = eds.message('eds_config');
      if (source) adsSource(source);
      edsName = eds.str('service_name') || undefined;
      eds.done();
    }
    edsName ??= name;
    if (f.has('load_assignment')) f.fail('load_assignment', 'an EDS cluster takes its endpoints from EDS');
  } else if (type === 'STATIC') {
    const la = f.message('load_assignment') ?? f.fail('load_assignment', 'a STATIC cluster needs its endpoints');
    hosts = mapLoadAssignment(resourceOf(la), la.path, false).hosts;
  } else if (type === 'STRICT_DNS' || type === 'LOGICAL_DNS') {
    const la = f.message('load_assignment') ?? f.fail('load_assignment', `a ${type} cluster needs the names to resolve`);
    const targets = mapLoadAssignment(resourceOf(la), la.path, false).hosts.map((h) => {
      const address = h.address as string;
      const i = address.lastIndexOf(':');
      return { host: address.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(address.slice(i + 1)), weight: (h.weight as number | undefined) ?? 1 };
    });
    if (targets.length === 0) f.fail('load_assignment', 'no name to resolve');
    if (type === 'LOGICAL_DNS' && targets.length > 1) f.fail('load_assignment', 'a LOGICAL_DNS cluster resolves one name');
    const familyName = f.str('dns_lookup_family') ?? 'AUTO';
    const family = DNS_FAMILIES[familyName] ?? f.fail('dns_lookup_family', `${familyName} is not supported`);
    const refresh = f.durationMs('dns_refresh_rate');
    dns = { targets, family, refreshMs: refresh && refresh >= 1000 ? refresh : 5000, logical: type === 'LOGICAL_DNS', respectTtl: f.bool('respect_dns_ttl') ?? false };
    const failure = f.message('dns_failure_refresh_rate');
    if (failure) {
      const base = failure.durationMs('base_interval');
      // Shuttle retries a failed lookup every base_interval (Envoy backs off up to max_interval).
      failure.skip('max_interval');
      failure.done();
      if (base && base >= 100) dns.failureRefreshMs = base;
    }
    const servers = dnsServers(f);
    if (servers) dns.servers = servers;
    f.skip('wait_for_warm_on_init');
  } else {
    f.fail('type', `${type} clusters are not supported yet (EDS, STATIC, STRICT_DNS and LOGICAL_DNS are)`);
  }
  const lb = f.str('lb_policy') ?? 'ROUND_ROBIN';
  if (!(lb in LB_POLICIES)) f.fail('lb_policy', `${lb} is not supported (ROUND_ROBIN, LEAST_REQUEST, RANDOM, RING_HASH, MAGLEV are)`);
  config.lb_policy = LB_POLICIES[lb];
  const ringConfig = f.message('ring_hash_lb_config');
  if (ringConfig) {
    if (lb !== 'RING_HASH') f.fail('ring_hash_lb_config', 'ring_hash_lb_config without lb_policy RING_HASH');
    const min = ringConfig.wrapped('minimum_ring_size');
    const max = ringConfig.wrapped('maximum_ring_size');
    // Shuttle's ring hashes with murmur3 (the same on every Shuttle; not Envoy's positions): either function is taken as "hash the key".
    ringConfig.skip('hash_function');
    ringConfig.done();
    config.ring_hash = { ...(min ? { minimum_ring_size: min } : {}), ...(max ? { maximum_ring_size: max } : {}) };
  }
  const maglevConfig = f.message('maglev_lb_config');
  if (maglevConfig) {
    if (lb !== 'MAGLEV') f.fail('maglev_lb_config', 'maglev_lb_config without lb_policy MAGLEV');
    const size = maglevConfig.wrapped('table_size');
    maglevConfig.done();
    if (size) config.maglev = { table_size: size };
  }
  let tlsNeeds: TlsNeeds | undefined;
  const socket = f.message('transport_socket');
  if (socket) {
    const needs = noTlsNeeds();
    const tls = upstreamTls(socket, needs);
    if (tls) {
      config.tls = tls;
      tlsNeeds = needs;
    }
  }
  if (f.list('transport_socket_matches').length > 0) f.fail('transport_socket_matches', 'per-endpoint transport sockets are not supported (Istio\'s auto mTLS: give the cluster one transport_socket)');
  const connectTimeout = f.durationMs('connect_timeout');
  config.connect_timeout = ms(connectTimeout && connectTimeout > 0 ? connectTimeout : 5000);
  const lr = f.message('least_request_lb_config');
  if (lr) {
    if (lb !== 'LEAST_REQUEST') lr.fail('choice_count', 'least_request_lb_config without lb_policy LEAST_REQUEST');
    lr.wrapped('choice_count'); // Shuttle's least-request looks at every host: at least as good as P2C
    lr.done();
  }
  const common = f.message('common_lb_config');
  if (common) {
    const panic = common.message('healthy_panic_threshold');
    if (panic) {
      const v = panic.num('value') ?? 0;
      panic.done();
      if (v < 0 || v > 100) common.fail('healthy_panic_threshold', 'expected a percentage from 0 to 100');
      config.panic_threshold = v;
    }
    common.done();
  }
  const cb = f.message('circuit_breakers');
  if (cb) config.circuit_breakers = circuitBreakers(cb);
  const od = f.message('outlier_detection');
  if (od) config.outlier_detection = outlierDetection(od);
  const checks = f.list('health_checks');
  if (checks.length > 1) f.fail('health_checks', 'Shuttle runs one health check per cluster');
  if (checks.length === 1) config.health_check = healthCheck(checks[0]);
  const maxRequests = f.wrapped('max_requests_per_connection');
  if (maxRequests !== undefined) config.connection_pool = { max_requests_per_connection: maxRequests };
  const protocolOptions = f.message('typed_extension_protocol_options');
  if (protocolOptions) {
    for (const key of protocolOptions.keys()) {
      if (key !== HTTP_PROTOCOL_OPTIONS) protocolOptions.fail(key, `protocol options ${key} are not supported (${HTTP_PROTOCOL_OPTIONS} is)`);
      Object.assign(config, httpProtocolOptions(protocolOptions.requiredMessage(key), config));
    }
    protocolOptions.done();
  }
  // Names for stats and opaque data; DNS settings that matter only to DNS clusters.
  f.skip('metadata', 'alt_stat_name', 'dns_lookup_family', 'respect_dns_ttl', 'dns_refresh_rate', 'dns_failure_refresh_rate', 'typed_dns_resolver_config', 'dns_resolvers', 'use_tcp_for_dns_lookups', 'track_cluster_stats', 'per_connection_buffer_limit_bytes');
  f.done();
  return { name, edsName, hosts, dns, config, ...(tlsNeeds ? { tls: tlsNeeds } : {}) };
}

const HTTP_PROTOCOL_OPTIONS = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';

/**
 * The protocol to a cluster's hosts (Istio sets it for gRPC and HTTP/2 services): explicit HTTP/1.1
 * or HTTP/2, or auto (ALPN with TLS, else HTTP/1.1, as Envoy's auto_config); HTTP/2 settings; the
 * pool's idle timeout and requests per connection.
 */
function httpProtocolOptions(o: Fields, cluster: Raw): Raw {
  const out: Raw = {};
  if (o.str('@type') !== `type.googleapis.com/${HTTP_PROTOCOL_OPTIONS}`) o.fail('@type', `expected type.googleapis.com/${HTTP_PROTOCOL_OPTIONS}`);
  const explicit = o.message('explicit_http_config');
  const auto = o.message('auto_config');
  if (o.has('use_downstream_protocol_config')) o.fail('use_downstream_protocol_config', 'not supported yet (explicit_http_config and auto_config are)');
  const protocolSettings = (p: Fields) => {
    const h1 = p.message('http_protocol_options');
    if (h1) h1.done(); // HTTP/1.1 with its defaults: any option set is refused
    const h2 = p.message('http2_protocol_options');
    if (h2) {
      const http2: Raw = {};
      for (const k of ['max_concurrent_streams', 'initial_stream_window_size', 'initial_connection_window_size'] as const) {
        const v = h2.wrapped(k);
        if (v !== undefined) http2[k] = v;
      }
      h2.done();
      out.http2 = http2;
    }
    if (p.has('http3_protocol_options')) p.fail('http3_protocol_options', 'HTTP/3 is not supported');
    return { h1: !!h1, h2: !!h2 };
  };
  if (explicit) {
    const { h1, h2 } = protocolSettings(explicit);
    explicit.done();
    if (h1 === h2) explicit.fail('http2_protocol_options', 'give one of http_protocol_options, http2_protocol_options');
    out.protocol = h2 ? 'http2' : 'http1';
  } else if (auto) {
    protocolSettings(auto);
    auto.done();
    out.protocol = 'auto';
  }
  const common = o.message('common_http_protocol_options');
  if (common) {
    const pool: Raw = { ...(cluster.connection_pool as Raw | undefined) };
    const idle = common.durationMs('idle_timeout');
    if (idle !== undefined) pool.idle_timeout = ms(idle);
    const max = common.wrapped('max_requests_per_connection');
    if (max !== undefined) pool.max_requests_per_connection = max;
    common.done();
    out.connection_pool = pool;
  }
  o.done();
  return out;
}

/** The message behind a Fields (for re-reading a sub-message with its own mapper). */
function resourceOf(f: Fields): Message {
  const out: Message = {};
  for (const k of f.keys()) out[k] = f.raw(k);
  return out;
}

/** config_source must be ADS: Shuttle has one xDS stream. */
function adsSource(source: Fields): void {
  if (!source.has('ads') && !source.has('self')) source.fail('ads', 'only ADS config sources ({ ads: {} }) are supported');
  source.raw('ads');
  source.raw('self');
  const version = source.str('resource_api_version');
  if (version !== undefined && version !== 'V3') source.fail('resource_api_version', 'only V3 is supported');
  source.skip('initial_fetch_timeout');
  source.done();
}

const HEALTHY_STATUSES = new Set(['UNKNOWN', 'HEALTHY', 'DEGRADED']);

/** ClusterLoadAssignment → hosts; endpoints not healthy (UNHEALTHY, DRAINING, TIMEOUT) are left out. */
export function mapLoadAssignment(resource: Message, path = '', named = true): { name: string; hosts: Raw[] } {
  const f = new Fields(resource, path);
  const name = named ? f.requiredStr('cluster_name') : (f.str('cluster_name') ?? '');
  const hosts: Raw[] = [];
  const seen = new Set<string>();
  let prioritized = false;
  for (const loc of f.list('endpoints')) {
    const priority = loc.num('priority') ?? 0;
    if (priority > 127) loc.fail('priority', 'Shuttle takes priorities from 0 to 127');
    if (priority > 0) prioritized = true;
    // Locality weights count only with locality_weighted_lb_config on the cluster (refused there).
    loc.skip('locality', 'load_balancing_weight');
    for (const lbe of loc.list('lb_endpoints')) {
      const status = lbe.str('health_status') ?? 'UNKNOWN';
      const weight = lbe.wrapped('load_balancing_weight') ?? 1;
      if (weight < 1 || weight > 1000) lbe.fail('load_balancing_weight', 'Shuttle takes weights from 1 to 1000');
      const ep = lbe.message('endpoint') ?? lbe.fail('endpoint', 'required (named endpoints are not supported)');
      const address = socketAddress(ep.requiredMessage('address'));
      ep.skip('hostname', 'health_check_config');
      ep.done();
      lbe.skip('metadata');
      lbe.done();
      if (!HEALTHY_STATUSES.has(status)) continue;
      if (seen.has(address)) lbe.fail('endpoint', `${address} appears twice`);
      seen.add(address);
      hosts.push(weight === 1 && priority === 0 ? { address } : { address, weight, ...(priority > 0 ? { priority } : {}) });
    }
    loc.done();
  }
  const policy = f.message('policy');
  if (policy) {
    if (policy.list('drop_overloads').length > 0) policy.fail('drop_overloads', 'drop_overloads are not supported');
    // Shuttle overprovisions by Envoy's default (140%): another factor would move traffic between priorities differently.
    const factor = policy.wrapped('overprovisioning_factor');
    if (prioritized && factor !== undefined && factor !== 140) policy.fail('overprovisioning_factor', 'only the default, 140, is supported with priorities');
    if (prioritized && policy.bool('weighted_priority_health')) policy.fail('weighted_priority_health', 'not supported');
    policy.skip('weighted_priority_health', 'endpoint_stale_after');
    policy.done();
  }
  f.skip('named_endpoints');
  f.done();
  return { name, hosts };
}

function circuitBreakers(cb: Fields): Raw {
  const thresholds = cb.list('thresholds').map((t) => {
    const priority = t.str('priority') ?? 'DEFAULT';
    const out: Raw = { priority: priority === 'HIGH' ? 'high' : 'default' };
    for (const [k, min] of [['max_connections', 1], ['max_pending_requests', 0], ['max_requests', 1], ['max_retries', 0]] as const) {
      const v = t.wrapped(k);
      if (v === undefined) continue;
      if (v < min) t.fail(k, `must be at least ${min}`);
      out[k] = v;
    }
    t.skip('track_remaining');
    t.done();
    return out;
  });
  cb.done();
  return { thresholds };
}

function outlierDetection(od: Fields): Raw {
  const out: Raw = {};
  const c5xx = od.wrapped('consecutive_5xx') ?? 5;
  const enforcing5xx = od.wrapped('enforcing_consecutive_5xx') ?? 100;
  if (enforcing5xx !== 0 && enforcing5xx !== 100) od.fail('enforcing_consecutive_5xx', 'only 0 or 100 percent enforcement is supported');
  if (enforcing5xx === 100 && c5xx > 0) out.consecutive_5xx = c5xx;
  const gateway = od.wrapped('consecutive_gateway_failure');
  const enforcingGateway = od.wrapped('enforcing_consecutive_gateway_failure') ?? 0;
  if (enforcingGateway !== 0 && enforcingGateway !== 100) od.fail('enforcing_consecutive_gateway_failure', 'only 0 or 100 percent enforcement is supported');
  if (enforcingGateway === 100) out.consecutive_gateway_failure = gateway ?? 5;
  const local = od.wrapped('consecutive_local_origin_failure');
  if (local !== undefined && local > 0) out.consecutive_failures = local;
  const base = od.durationMs('base_ejection_time');
  if (base !== undefined && base > 0) out.base_ejection_time = ms(base);
  const max = od.durationMs('max_ejection_time');
  if (max !== undefined && max > 0) out.max_ejection_time = ms(max);
  const percent = od.wrapped('max_ejection_percent');
  if (percent !== undefined) out.max_ejection_percent = Math.min(100, percent);
  // Envoy's sweep interval: Shuttle ejects at the failure itself, without a sweep.
  od.skip('interval', 'split_external_local_origin_errors', 'enforcing_consecutive_local_origin_failure');
  od.done();
  return out;
}

function healthCheck(hc: Fields): Raw {
  const out: Raw = {};
  const timeout = hc.durationMs('timeout');
  const interval = hc.durationMs('interval');
  if (timeout) out.timeout = ms(timeout);
  if (interval) out.interval = ms(interval);
  const unhealthy = hc.wrapped('unhealthy_threshold');
  const healthy = hc.wrapped('healthy_threshold');
  if (unhealthy) out.unhealthy_threshold = unhealthy;
  if (healthy) out.healthy_threshold = healthy;
  const http = hc.message('http_health_check');
  const tcp = hc.message('tcp_health_check');
  const grpc = hc.message('grpc_health_check');
  if (http) {
    out.type = 'http';
    out.path = http.requiredStr('path');
    const host = http.str('host');
    if (host) out.host = host;
    const ranges = http.list('expected_statuses');
    if (ranges.length > 0) {
      const statuses: number[] = [];
      for (const r of ranges) {
        const start = r.num('start') ?? 0;
        const end = r.num('end') ?? 0;
        r.done();
        if (start < 100 || end > 600 || end <= start || end - start > 500) r.fail('start', 'expected a range of statuses within [100, 600)');
        for (let s = start; s < end; s++) statuses.push(s);
      }
      out.expected_statuses = statuses;
    }
    http.done();
  } else if (tcp) {
    if (tcp.has('send') || tcp.list('receive').length > 0) tcp.fail('send', 'TCP checks with payloads are not supported (a connect is the check)');
    tcp.done();
    out.type = 'tcp';
  } else if (grpc) {
    out.type = 'grpc';
    const service = grpc.str('service_name');
    if (service) out.service_name = service;
    grpc.skip('authority');
    grpc.done();
  } else {
    hc.fail('http_health_check', 'one of http_health_check, tcp_health_check, grpc_health_check is required');
  }
  hc.skip('interval_jitter', 'interval_jitter_percent', 'event_log_path', 'always_log_health_check_failures');
  hc.done();
  return out;
}

// ---- listeners --------------------------------------------------------------------------------

/** A mapped listener: Shuttle config less its virtual hosts when they come from RDS. */
export interface MappedListener {
  name: string;
  /** TLS termination: inline PEM it carries, SDS secrets it waits for. */
  tls?: TlsNeeds;
  /** The RouteConfiguration this listener waits for (RDS), if any. */
  rdsName?: string;
  config: Raw;
}

export function mapListener(resource: Message, path = ''): MappedListener {
  const f = new Fields(resource, path);
  const name = f.requiredStr('name');
  const address = socketAddress(f.requiredMessage('address'));
  const chains = f.list('filter_chains');
  if (chains.length === 0) f.fail('filter_chains', 'a listener needs a filter chain');
  if (chains.length > 1) throw new XdsFieldError(chains[1].path, 'more than one filter chain (chains chosen by filter_chain_match) is not supported yet');
  if (f.has('default_filter_chain')) f.fail('default_filter_chain', 'not supported yet');
  if (f.list('listener_filters').length > 0) f.fail('listener_filters', 'listener filters (TLS/HTTP inspectors, original destination) are not supported yet');
  if (f.wrappedBool('use_original_dst')) f.fail('use_original_dst', 'original-destination listeners (iptables capture) are not supported yet');
  f.skip('stat_prefix', 'metadata', 'traffic_direction', 'listener_filters_timeout', 'continue_on_listener_filters_timeout', 'per_connection_buffer_limit_bytes', 'access_log');
  const chain = chains[0];
  const match = chain.message('filter_chain_match');
  if (match && match.keys().length > 0) match.fail(match.keys()[0], 'filter chain matching is not supported yet');
  const socket = chain.message('transport_socket');
  const tlsNeeds = noTlsNeeds();
  const tls = socket ? downstreamTls(socket, tlsNeeds) : undefined;
  chain.skip('transport_socket_connect_timeout');
  chain.skip('name', 'metadata');
  const filters = chain.list('filters');
  if (filters.length !== 1) chain.fail('filters', 'exactly one network filter (http_connection_manager or tcp_proxy) is supported');
  chain.done();
  const filter = filters[0];
  filter.skip('name');
  const typed = filter.requiredMessage('typed_config');
  filter.done();
  const type = typed.str('@type');
  let out: MappedListener;
  if (type === HCM_TYPE) out = httpConnectionManager(name, address, typed);
  else if (type === TCP_PROXY_TYPE) out = { name, config: { name, address, protocol: 'tcp', ...tcpProxy(typed) } };
  else return typed.fail('@type', `network filter ${type ?? '(none)'} is not supported (http_connection_manager and tcp_proxy are)`);
  f.done();
  if (tls) {
    out.config.tls = tls;
    out.tls = tlsNeeds;
  }
  return out;
}

function tcpProxy(t: Fields): Raw {
  // Shuttle's L4 hashes the client's address for a consistent-hash cluster: the only policy Envoy's tcp_proxy has besides filter state.
  for (const h of t.list('hash_policy')) {
    const ip = h.message('source_ip');
    if (!ip) h.fail(h.keys()[0] ?? 'source_ip', 'only source_ip is supported');
    ip!.done();
    h.done();
  }
  const out: Raw = { cluster: t.str('cluster') ?? t.fail('cluster', 'a cluster is required (weighted_clusters are not supported for TCP yet)') };
  const idle = t.durationMs('idle_timeout');
  if (idle !== undefined && idle > 0) out.idle_timeout = ms(idle);
  const attempts = t.wrapped('max_connect_attempts');
  if (attempts !== undefined) {
    if (attempts < 1 || attempts > 10) t.fail('max_connect_attempts', 'expected 1 to 10');
    out.max_connect_attempts = attempts;
  }
  t.skip('stat_prefix', 'access_log');
  t.done();
  return out;
}

const CODECS: Record<string, string> = { AUTO: 'auto', HTTP1: 'http1', HTTP2: 'http2' };

function httpConnectionManager(name: string, address: string, h: Fields): MappedListener {
  const config: Raw = { name, address, protocol: 'http' };
  const http: Raw = {};
  const codec = h.str('codec_type') ?? 'AUTO';
  if (!(codec in CODECS)) h.fail('codec_type', `${codec} is not supported (AUTO, HTTP1, HTTP2 are)`);
  http.codec = CODECS[codec];
  const streamIdle = h.durationMs('stream_idle_timeout');
  if (streamIdle !== undefined) http.stream_idle_timeout = ms(streamIdle);
  const headersTimeout = h.durationMs('request_headers_timeout');
  if (headersTimeout !== undefined && headersTimeout > 0) http.request_headers_timeout = ms(headersTimeout);
  const headersKb = h.wrapped('max_request_headers_kb');
  if (headersKb !== undefined) http.max_request_headers_kb = headersKb;
  const h2 = h.message('http2_protocol_options');
  if (h2) {
    const http2: Raw = {};
    for (const k of ['max_concurrent_streams', 'initial_stream_window_size', 'initial_connection_window_size'] as const) {
      const v = h2.wrapped(k);
      if (v !== undefined) http2[k] = v;
    }
    h2.done();
    http.http2 = http2;
  }
  // Shuttle tunnels every accepted Upgrade (101) as bytes: WebSocket upgrades are what it honours.
  for (const u of h.list('upgrade_configs')) {
    const type = u.requiredStr('upgrade_type');
    if (type.toLowerCase() !== 'websocket') u.fail('upgrade_type', `${type} upgrades are not supported (websocket is)`);
    if (u.wrappedBool('enabled') === false) u.fail('enabled', 'Shuttle cannot turn WebSocket upgrades off');
    if (u.list('filters').length > 0) u.fail('filters', 'filters for upgrades are not supported');
    u.done();
  }
  config.http = http;
  const httpFilters = mapHttpFilters(h, 'http_filters', ROUTER_TYPE);
  if (httpFilters.length > 0) config.http_filters = httpFilters;
  let rdsName: string | undefined;
  const rds = h.message('rds');
  const inline = h.message('route_config');
  if (rds) {
    adsSource(rds.requiredMessage('config_source'));
    rdsName = rds.requiredStr('route_config_name');
    rds.done();
  } else if (inline) {
    config.virtual_hosts = mapRouteConfiguration(resourceOf(inline), inline.path, false).virtual_hosts;
  } else {
    h.fail('rds', 'rds or route_config is required (scoped routes are not supported)');
  }
  // Stats names, logs and tracing do not change routing; the rest is refused.
  h.skip('stat_prefix', 'access_log', 'tracing', 'generate_request_id', 'server_name', 'use_remote_address', 'xff_num_trusted_hops', 'normalize_path', 'merge_slashes', 'forward_client_cert_details', 'set_current_client_cert_details');
  h.done();
  return { name, rdsName, config };
}

// ---- routes -----------------------------------------------------------------------------------

export function mapRouteConfiguration(resource: Message, path = '', named = true): { name: string; virtual_hosts: Raw[] } {
  const f = new Fields(resource, path);
  const name = named ? f.requiredStr('name') : (f.str('name') ?? '');
  const configMutations = headerMutations(f);
  const mostSpecificWins = f.bool('most_specific_header_mutations_wins') ?? false;
  const virtualHosts = f.list('virtual_hosts').map((vh) => {
    const out: Raw = { name: vh.requiredStr('name'), domains: vh.strings('domains') };
    if ((out.domains as string[]).length === 0) vh.fail('domains', 'at least one domain is required');
    out.routes = vh.list('routes').map(mapRoute);
    if ((out.routes as unknown[]).length === 0) vh.fail('routes', 'at least one route is required');
    const vhMutations = headerMutations(vh);
    for (const r of out.routes as Raw[]) addMutations(r, [vhMutations, configMutations], mostSpecificWins);
    // A virtual host's per-filter config applies to its routes that have none of their own.
    const vhPerFilter = perFilterConfig(vh.message('typed_per_filter_config'));
    if (vhPerFilter) for (const r of out.routes as Raw[]) r.per_filter_config = { ...vhPerFilter, ...(r.per_filter_config as Raw | undefined) };
    vh.skip('metadata');
    vh.done();
    return out;
  });
  f.skip('validate_clusters', 'metadata');
  f.done();
  return { name, virtual_hosts: virtualHosts };
}

type Mutations = Partial<Record<'request_headers_to_add' | 'response_headers_to_add' | 'request_headers_to_remove' | 'response_headers_to_remove', unknown[]>>;

/** The header mutations a virtual host or route configuration carries for all its routes. */
function headerMutations(m: Fields): Mutations {
  const out: Mutations = {};
  const reqAdd = headersToAdd(m.list('request_headers_to_add'));
  const resAdd = headersToAdd(m.list('response_headers_to_add'));
  const reqRemove = m.strings('request_headers_to_remove');
  const resRemove = m.strings('response_headers_to_remove');
  if (reqAdd.length) out.request_headers_to_add = reqAdd;
  if (resAdd.length) out.response_headers_to_add = resAdd;
  if (reqRemove.length) out.request_headers_to_remove = reqRemove;
  if (resRemove.length) out.response_headers_to_remove = resRemove;
  return out;
}

/**
 * A route's own mutations, then its virtual host's, then its route configuration's (Envoy's order:
 * the last set wins a header); most_specific_header_mutations_wins reverses it.
 */
function addMutations(route: Raw, outer: Mutations[], mostSpecificWins: boolean): void {
  for (const m of outer) {
    for (const [key, list] of Object.entries(m) as [keyof Mutations, unknown[]][]) {
      const own = (route[key] as unknown[] | undefined) ?? [];
      route[key] = mostSpecificWins ? [...list, ...own] : [...own, ...list];
    }
  }
}

function routeMatch(m: Fields): Raw {
  const out: Raw = {};
  const prefix = m.str('prefix');
  const path = m.str('path');
  const safe = m.message('safe_regex');
  if (m.has('path_separated_prefix')) m.fail('path_separated_prefix', 'not supported yet');
  if (m.has('connect_matcher')) m.fail('connect_matcher', 'CONNECT is not supported');
  const grpc = m.message('grpc');
  if (grpc) grpc.done(); // gRPC requests only: by their content-type, as Envoy tells them
  if (m.has('runtime_fraction')) m.fail('runtime_fraction', 'runtime fractions are not supported');
  if (prefix !== undefined) out.prefix = prefix === '' ? '/' : prefix;
  else if (path !== undefined) out.path = path;
  else if (safe) out.regex = safeRegex(safe);
  else m.fail('prefix', 'one of prefix, path, safe_regex is required');
  if (prefix !== undefined && prefix !== '' && !prefix.startsWith('/')) m.fail('prefix', 'must start with /');
  if (path !== undefined && !path.startsWith('/')) m.fail('path', 'must start with /');
  const cs = m.wrappedBool('case_sensitive');
  if (cs === false) out.case_sensitive = false;
  const headers = m.list('headers').map(headerMatcher);
  if (grpc) headers.push({ name: 'content-type', regex: '(?i)application/grpc([+;].*)?' });
  if (headers.length > 0) out.headers = headers;
  const query = m.list('query_parameters').map((q) => {
    const o: Raw = { name: q.requiredStr('name') };
    const sm = q.message('string_match');
    const present = q.bool('present_match');
    q.done();
    return sm ? { ...o, ...stringMatcher(sm) } : { ...o, present: present ?? true };
  });
  if (query.length > 0) out.query_params = query;
  m.done();
  return out;
}

const RETRY_ON_SET = new Set<string>(RETRY_ON);

function retryPolicy(r: Fields): Raw {
  const out: Raw = {};
  const on = (r.str('retry_on') ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  for (const c of on) if (!RETRY_ON_SET.has(c)) r.fail('retry_on', `"${c}" is not supported (${RETRY_ON.join(', ')} are)`);
  if (on.length > 0) out.retry_on = on;
  const n = r.wrapped('num_retries');
  out.num_retries = n ?? 1;
  if ((out.num_retries as number) > 10) r.fail('num_retries', 'at most 10');
  const perTry = r.durationMs('per_try_timeout');
  if (perTry) out.per_try_timeout = ms(perTry);
  const codes = r.raw('retriable_status_codes');
  if (Array.isArray(codes) && codes.length > 0) out.retriable_status_codes = codes.map(Number);
  // Shuttle never retries on a host the request already tried: Envoy's previous_hosts predicate.
  for (const p of r.list('retry_host_predicate')) {
    if (p.str('name') !== PREVIOUS_HOSTS) p.fail('name', `only ${PREVIOUS_HOSTS} is supported`);
    p.skip('typed_config');
    p.done();
  }
  r.skip('host_selection_retry_max_attempts');
  r.done();
  return out;
}

const REDIRECT_CODES: Record<string, number> = { MOVED_PERMANENTLY: 301, FOUND: 302, SEE_OTHER: 303, TEMPORARY_REDIRECT: 307, PERMANENT_REDIRECT: 308 };

function mapRoute(r: Fields): Raw {
  const out: Raw = {};
  const name = r.str('name');
  if (name) out.name = name;
  out.match = routeMatch(r.requiredMessage('match'));
  const action = r.message('route');
  const direct = r.message('direct_response');
  const redirect = r.message('redirect');
  if (action) {
    Object.assign(out, routeAction(action));
    // Shuttle rewrites the matched prefix; Envoy's rewrite of a whole path or regex match is not mapped.
    if (out.prefix_rewrite !== undefined && (out.match as Raw).prefix === undefined) throw new XdsFieldError(`${action.path}.prefix_rewrite`, 'prefix_rewrite is supported with a prefix match only');
  }
  else if (direct) {
    const status = direct.num('status') ?? 0;
    if (status < 200 || status > 599) direct.fail('status', 'Shuttle sends direct responses with statuses 200 to 599');
    const body = direct.message('body');
    let text = '';
    if (body) {
      text = body.str('inline_string') ?? body.fail('inline_string', 'only inline_string bodies are supported');
      body.done();
    }
    direct.done();
    out.direct_response = { status, body: text };
  } else if (redirect) {
    const o: Raw = {};
    const https = redirect.bool('https_redirect');
    const scheme = redirect.str('scheme_redirect');
    if (https) o.scheme = 'https';
    else if (scheme) {
      if (scheme !== 'http' && scheme !== 'https') redirect.fail('scheme_redirect', 'http or https');
      o.scheme = scheme;
    }
    const host = redirect.str('host_redirect');
    if (host) o.host = host;
    const path = redirect.str('path_redirect');
    if (path) o.path = path;
    const prefix = redirect.str('prefix_rewrite');
    if (prefix !== undefined) o.prefix_rewrite = prefix;
    const code = redirect.str('response_code') ?? 'MOVED_PERMANENTLY';
    o.status = REDIRECT_CODES[code] ?? redirect.fail('response_code', `${code} is not supported`);
    if (redirect.has('port_redirect')) redirect.fail('port_redirect', 'not supported yet');
    if (redirect.bool('strip_query')) redirect.fail('strip_query', 'not supported yet');
    redirect.done();
    out.redirect = o;
  } else {
    r.fail('route', 'one of route, redirect, direct_response is required');
  }
  const reqAdd = headersToAdd(r.list('request_headers_to_add'));
  if (reqAdd.length) out.request_headers_to_add = reqAdd;
  const resAdd = headersToAdd(r.list('response_headers_to_add'));
  if (resAdd.length) out.response_headers_to_add = resAdd;
  const reqRemove = r.strings('request_headers_to_remove');
  if (reqRemove.length) out.request_headers_to_remove = reqRemove;
  const resRemove = r.strings('response_headers_to_remove');
  if (resRemove.length) out.response_headers_to_remove = resRemove;
  const perFilter = perFilterConfig(r.message('typed_per_filter_config'));
  if (perFilter) out.per_filter_config = perFilter;
  // decorator: the tracing span's name; metadata: opaque.
  r.skip('decorator', 'metadata');
  r.done();
  return out;
}

/** route.v3.RouteAction.HashPolicy → Shuttle's hash_policy entry. */
function hashPolicy(p: Fields): Raw {
  const out: Raw = {};
  const header = p.message('header');
  const cookie = p.message('cookie');
  const conn = p.message('connection_properties');
  const query = p.message('query_parameter');
  if (header) {
    out.header = { name: header.requiredStr('header_name').toLowerCase() };
    if (header.has('regex_rewrite')) header.fail('regex_rewrite', 'rewriting the header before hashing is not supported');
    header.done();
  } else if (cookie) {
    out.cookie = { name: cookie.requiredStr('name') };
    if (cookie.has('ttl')) cookie.fail('ttl', 'generated cookies (a ttl) are not supported: Shuttle hashes a cookie the client sends');
    cookie.skip('path', 'attributes');
    cookie.done();
  } else if (conn) {
    if (!conn.bool('source_ip')) conn.fail('source_ip', 'required (true)');
    conn.done();
    out.source_ip = true;
  } else if (query) {
    out.query_parameter = { name: query.requiredStr('name') };
    query.done();
  } else {
    p.fail(p.keys().find((k) => k !== 'terminal') ?? 'header', 'hash policy not supported (header, cookie, connection_properties, query_parameter are)');
  }
  if (p.bool('terminal')) out.terminal = true;
  p.done();
  return out;
}

function routeAction(a: Fields): Raw {
  const out: Raw = {};
  const cluster = a.str('cluster');
  const weighted = a.message('weighted_clusters');
  if (cluster) out.cluster = cluster;
  else if (weighted) {
    out.weighted_clusters = weighted.list('clusters').map((c) => {
      const w = { name: c.requiredStr('name'), weight: c.wrapped('weight') ?? 0 };
      if (w.weight > 10_000) c.fail('weight', 'at most 10000');
      c.done();
      return w;
    });
    weighted.skip('total_weight');
    weighted.done();
    if ((out.weighted_clusters as { weight: number }[]).reduce((n, w) => n + w.weight, 0) === 0) a.fail('weighted_clusters', 'the weights add up to 0');
  } else {
    a.fail('cluster', 'cluster or weighted_clusters is required (cluster_header is not supported)');
  }
  const timeout = a.durationMs('timeout');
  if (timeout !== undefined) out.timeout = ms(timeout);
  const retry = a.message('retry_policy');
  if (retry) out.retry_policy = retryPolicy(retry);
  const prefix = a.str('prefix_rewrite');
  if (prefix !== undefined) out.prefix_rewrite = prefix;
  const host = a.str('host_rewrite_literal');
  if (host) out.host_rewrite = host;
  const hashPolicies = a.list('hash_policy').map(hashPolicy);
  if (hashPolicies.length > 0) out.hash_policy = hashPolicies;
  const mirrors = a.list('request_mirror_policies').map((m) => {
    const o: Raw = { cluster: m.requiredStr('cluster') };
    const rf = m.message('runtime_fraction');
    if (rf) {
      const dv = rf.requiredMessage('default_value');
      const num = dv.num('numerator') ?? 0;
      const den = { HUNDRED: 100, TEN_THOUSAND: 10_000, MILLION: 1_000_000 }[dv.str('denominator') ?? 'HUNDRED'] ?? 100;
      dv.done();
      rf.skip('runtime_key');
      rf.done();
      o.percentage = Math.min(100, (num / den) * 100);
    }
    m.done();
    return o;
  });
  if (mirrors.length > 0) out.request_mirror_policies = mirrors;
  const priority = a.str('priority');
  if (priority === 'HIGH') out.priority = 'high';
  // Istio sends max_stream_duration with zero values (no limit): only a real limit is refused.
  const msd = a.message('max_stream_duration');
  if (msd) {
    const max = msd.durationMs('max_stream_duration') ?? 0;
    const grpcMax = msd.durationMs('grpc_timeout_header_max') ?? 0;
    if (max > 0 || grpcMax > 0) msd.fail('max_stream_duration', 'max_stream_duration limits are not supported yet');
    msd.done();
  }
  a.done();
  return out;
}
