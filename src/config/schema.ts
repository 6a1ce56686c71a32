/**
 * The config schema (version 1), validated once on the main thread.
 *
 * Names follow Envoy/MOSN: `listeners` feed `clusters`; a cluster is a set of hosts behind a
 * load-balancing policy. Durations are "250ms", "5s", "1m", "1h" or a number of milliseconds;
 * they are normalised to milliseconds here so the rest of the code never parses them again.
 */
import { z } from 'zod';
import { parseAddress, type SocketAddress } from './address.ts';
import { sniRoute, tlsClusterOptions, tlsListenerOptions } from './tls-schema.ts';
import { filterEntry, normalizeFilters } from './filter-schema.ts';
import { connectionPool, duration, http2ClientOptions, httpOptions, retryBudget, rpcOptions, virtualHost } from './route-schema.ts';

const positiveDuration = duration.refine((ms) => ms > 0, { message: 'must be greater than zero' });

/** "host:port" or "[v6]:port" → { host, port }. */
const address = (opts: { allowPortZero: boolean }) =>
  z.string().transform((value, ctx): SocketAddress => {
    const parsed = parseAddress(value);
    if (!parsed || (parsed.port === 0 && !opts.allowPortZero)) {
      ctx.addIssue({ code: 'custom', message: 'expected host:port' });
      return z.NEVER;
    }
    return parsed;
  });

// ":" and "|" for the names xDS control planes give (Istio: outbound|8080||reviews.default.svc.cluster.local).
const name = z.string().regex(/^[A-Za-z0-9_.:|-]{1,255}$/, 'expected a name of 1-255 letters, digits, "_", ".", "-", ":" or "|"');

export const LB_POLICIES = ['round_robin', 'weighted_round_robin', 'random', 'least_connections', 'ring_hash', 'maglev'] as const;

const hostObject = z.object({
  address: address({ allowPortZero: false }),
  weight: z.number().int().min(1).max(1000).default(1),
  /** Failover level (Envoy's EDS priority): 0 serves; higher levels take the share 0 cannot. */
  priority: z.number().int().min(0).max(127).default(0),
}).strict();

/** "host:port", or { address: "host:port", weight: N }; errors keep the shape the user wrote. */
const hostEntry = z.unknown().transform((value, ctx): SocketAddress & { weight: number; priority?: number } => {
  if (typeof value === 'string') {
    const parsed = parseAddress(value);
    if (parsed && parsed.port !== 0) return { ...parsed, weight: 1 };
    ctx.addIssue({ code: 'custom', message: 'expected host:port' });
    return z.NEVER;
  }
  if (value && typeof value === 'object') {
    const result = hostObject.safeParse(value);
    // priority only when above 0: most hosts have none, and configs dump as they were written.
    if (result.success) return { ...result.data.address, weight: result.data.weight, ...(result.data.priority > 0 ? { priority: result.data.priority } : {}) };
    for (const issue of result.error.issues) ctx.addIssue({ ...issue, code: 'custom', path: issue.path as PropertyKey[] });
    return z.NEVER;
  }
  ctx.addIssue({ code: 'custom', message: 'expected host:port or { address: host:port, weight: N, priority: P }' });
  return z.NEVER;
}).meta({ 'x-shuttle-schema': { anyOf: [{ type: 'string', description: 'host:port' }, { type: 'object', properties: { address: { type: 'string', description: 'host:port' }, weight: { type: 'integer', minimum: 1, maximum: 1000, default: 1 }, priority: { type: 'integer', minimum: 0, maximum: 127, default: 0, description: 'failover level: 0 serves, higher levels take the share level 0 cannot (Envoy priorities)' } }, required: ['address'], additionalProperties: false }] } });

/** Active health checking, run once per process (not per worker). */
const healthCheck = z.object({
  type: z.enum(['tcp', 'http', 'grpc']).default('tcp'),
  interval: positiveDuration.default(5000),
  timeout: positiveDuration.default(1000),
  /** Consecutive passes that make an unhealthy host healthy. */
  healthy_threshold: z.number().int().min(1).max(100).default(2),
  /** Consecutive failures that make a healthy host unhealthy. */
  unhealthy_threshold: z.number().int().min(1).max(100).default(3),
  /** http only: the request path, Host header and statuses that count as a pass. */
  path: z.string().regex(/^\/[^\s]*$/, 'expected a path starting with /').default('/health'),
  host: z.string().optional(),
  expected_statuses: z.array(z.number().int().min(100).max(599)).min(1).default([200]),
  /** grpc only: the service asked about in grpc.health.v1.Health/Check ("" = the whole server). */
  service_name: z.string().default(''),
}).strict();

/** Passive health: hosts that keep failing are ejected for a while (Envoy's outlier detection). */
const outlierDetection = z.object({
  /** Consecutive local-origin failures (connects refused, timed out, TLS failed) that eject. */
  consecutive_failures: z.number().int().min(1).max(1000).default(5),
  /** Consecutive responses ≥ 500 (resets and gRPC UNAVAILABLE included) that eject; off unless set. */
  consecutive_5xx: z.number().int().min(1).max(1000).optional(),
  /** Consecutive gateway errors (502, 503, 504, resets, gRPC UNAVAILABLE) that eject; off unless set. */
  consecutive_gateway_failure: z.number().int().min(1).max(1000).optional(),
  /**
   * Success-rate ejection (Envoy's): every `interval`, hosts with at least `request_volume`
   * requests whose success rate is below mean − stdev_factor × stdev of the cluster's hosts are
   * ejected, when at least `minimum_hosts` hosts have that volume.
   */
  success_rate: z.object({
    interval: positiveDuration.default(10_000),
    minimum_hosts: z.number().int().min(1).default(5),
    request_volume: z.number().int().min(1).default(100),
    stdev_factor: z.number().min(0).default(1.9),
  }).strict().optional(),
  base_ejection_time: positiveDuration.default(30_000),
  max_ejection_time: positiveDuration.default(300_000),
  /** At most this share of a cluster's hosts is ejected at once (one host always may be). */
  max_ejection_percent: z.number().int().min(0).max(100).default(10),
}).strict();

/** Envoy's circuit breakers: limits per priority, across all worker threads. */
const circuitBreakers = z.object({
  thresholds: z.array(z.object({
    priority: z.enum(['default', 'high']).default('default'),
    /** Connections open to the cluster's hosts. */
    max_connections: z.number().int().min(1).optional(),
    /** Requests waiting for a connection. */
    max_pending_requests: z.number().int().min(0).optional(),
    /** Requests in flight to the cluster. */
    max_requests: z.number().int().min(1).optional(),
    /** Retries in flight to the cluster. */
    max_retries: z.number().int().min(0).optional(),
  }).strict()).min(1).max(2),
}).strict().superRefine((c, ctx) => {
  const seen = new Set<string>();
  c.thresholds.forEach((t, i) => {
    if (seen.has(t.priority)) ctx.addIssue({ code: 'custom', path: ['thresholds', i, 'priority'], message: `priority ${t.priority} appears twice` });
    seen.add(t.priority);
  });
});

const cluster = z.object({
  name,
  lb_policy: z.enum(LB_POLICIES).default('round_robin'),
  connect_timeout: positiveDuration.default(5000),
  hosts: z.array(hostEntry).min(1, 'a cluster needs at least one host'),
  health_check: healthCheck.optional(),
  outlier_detection: outlierDetection.optional(),
  /** Below this percentage of healthy hosts the cluster ignores health (Envoy: 50). */
  panic_threshold: z.number().min(0).max(100).default(50),
  /** HTTP upstream connection pool, per worker and host. */
  connection_pool: connectionPool.default(connectionPool.parse({})),
  retry_budget: retryBudget.default(retryBudget.parse({})),
  /**
   * The protocol HTTP routes speak to this cluster's hosts (gRPC needs http2). `auto`: with
   * `tls`, the host's ALPN answer picks HTTP/2 or HTTP/1.1; without TLS, HTTP/1.1.
   */
  protocol: z.enum(['http1', 'http2', 'auto']).default('http1'),
  /** TLS to the hosts (verification on by default). */
  tls: tlsClusterOptions.optional(),
  /** HTTP/2 upstream connections: settings sent to the hosts, streams per connection. */
  http2: http2ClientOptions.default(http2ClientOptions.parse({})),
  /** Limits on connections, pending and active requests and retries, across all workers. */
  circuit_breakers: circuitBreakers.optional(),
  /** lb_policy ring_hash: points on the ring in all (Envoy's defaults). */
  ring_hash: z.object({
    minimum_ring_size: z.number().int().min(1).max(8_388_608).default(1024),
    maximum_ring_size: z.number().int().min(1).max(8_388_608).default(8_388_608),
  }).strict().refine((r) => r.minimum_ring_size <= r.maximum_ring_size, { message: 'minimum_ring_size is above maximum_ring_size', path: ['minimum_ring_size'] }).optional(),
  /** lb_policy maglev: slots in the lookup table, a prime (Envoy's default 65537). */
  maglev: z.object({
    table_size: z.number().int().min(3).max(5_000_011).refine(isPrime, { message: 'must be a prime number' }).default(65_537),
  }).strict().optional(),
}).strict();

function isPrime(n: number): boolean {
  if (n < 2 || n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

/** Every field an access line may carry (per protocol, those that apply), `time` first. */
export const ACCESS_LOG_FIELDS = [
  'time', 'listener', 'conn', 'protocol', 'downstream', 'method', 'authority', 'path', 'service', 'status', 'grpc_status',
  'bytes_received', 'bytes_sent', 'duration_ms', 'route', 'cluster', 'upstream', 'sni', 'tls', 'attempts', 'retries',
  'oneway', 'error', 'response_flags', 'request_id', 'trace_id', 'jwt_sub',
] as const;

/**
 * An access log of its own: a file (appended to by every worker thread; relative to the config
 * file's folder; reopened on SIGUSR1 for log rotation), or stdout when `path` is absent, with the
 * fields chosen. A file log is written whatever log.level says.
 */
const accessLog = z.object({
  path: z.string().min(1).optional(),
  /** Default: every field. `msg: "access"` stays on stdout lines (it tells them from other lines). */
  fields: z.array(z.enum(ACCESS_LOG_FIELDS)).min(1).optional(),
}).strict();

export const LISTENER_PROTOCOLS = ['tcp', 'http', 'bolt', 'dubbo', 'auto'] as const;

const listener = z.object({
  name,
  address: address({ allowPortZero: true }),
  protocol: z.enum(LISTENER_PROTOCOLS).default('tcp'),
  /** tcp: the cluster the listener proxies to. */
  cluster: name.optional(),
  /** http: virtual hosts and their routes. */
  virtual_hosts: z.array(virtualHost).optional(),
  http: httpOptions.default(httpOptions.parse({})),
  /** bolt (and auto): RPC routes and limits. */
  rpc: rpcOptions.optional(),
  /**
   * One access-log line per connection (tcp), request (http) or call (bolt, dubbo): `true` (in the
   * log on stdout, every field), `false`, or `{ path, fields }` (see accessLog).
   */
  access_log: z.union([z.boolean(), accessLog], { error: 'expected true, false or { path, fields }' }).default(true),
  /** Close a proxied connection after this long with no byte in either direction (Envoy: 1h). */
  idle_timeout: positiveDuration.default(3_600_000),
  /** Hosts tried in turn when connecting upstream fails (Envoy: max_connect_attempts). */
  max_connect_attempts: z.number().int().min(1).max(10).default(3),
  backlog: z.number().int().min(1).max(65535).default(511),
  /** TLS termination (any protocol; on auto listeners, connections starting with a TLS record). */
  tls: tlsListenerOptions.optional(),
  /** tcp: TLS passthrough, the ClientHello's server name picks the cluster (else `cluster`). */
  sni_routes: z.array(sniRoute).min(1).optional(),
  /** Stream filters run on every HTTP request, in order (src/filters/). */
  http_filters: z.array(filterEntry).default([]),
  /** Stream filters run on every Bolt and Dubbo call. */
  rpc_filters: z.array(filterEntry).default([]),
}).strict().superRefine((l, ctx) => {
  if (l.sni_routes && l.protocol !== 'tcp') ctx.addIssue({ code: 'custom', path: ['sni_routes'], message: 'sni_routes are for tcp listeners' });
  if (l.sni_routes && l.tls) ctx.addIssue({ code: 'custom', path: ['sni_routes'], message: 'a listener either terminates TLS (tls) or passes it through by SNI (sni_routes), not both' });
  if (l.protocol === 'tcp' && !l.cluster && !l.sni_routes) ctx.addIssue({ code: 'custom', path: ['cluster'], message: 'a tcp listener needs a cluster' });
  if (l.protocol === 'http' && !l.virtual_hosts) ctx.addIssue({ code: 'custom', path: ['virtual_hosts'], message: 'an http listener needs virtual_hosts' });
  if ((l.protocol === 'bolt' || l.protocol === 'dubbo') && !l.rpc) ctx.addIssue({ code: 'custom', path: ['rpc'], message: `a ${l.protocol} listener needs rpc.routes` });
  if (l.protocol === 'auto' && !l.rpc && !l.virtual_hosts) ctx.addIssue({ code: 'custom', path: ['protocol'], message: 'an auto listener needs virtual_hosts (HTTP) and/or rpc (Bolt, Dubbo)' });
  if (l.protocol !== 'tcp' && l.cluster) ctx.addIssue({ code: 'custom', path: ['cluster'], message: `a ${l.protocol} listener routes by its routes; cluster is for tcp listeners` });
  if (l.http_filters.length > 0 && !l.virtual_hosts) ctx.addIssue({ code: 'custom', path: ['http_filters'], message: 'http_filters need an HTTP listener (virtual_hosts)' });
  if (l.rpc_filters.length > 0 && !l.rpc) ctx.addIssue({ code: 'custom', path: ['rpc_filters'], message: 'rpc_filters need an RPC listener (rpc)' });
}).transform((l, ctx) => normalizeFilters(l, (i) => ctx.addIssue({ code: 'custom', path: i.path, message: i.message })));

/** Loopback addresses: the only ones the admin API binds unless allow_remote says otherwise. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

const admin = z.object({
  address: address({ allowPortZero: true }).default({ host: '127.0.0.1', port: 9901 }),
  /**
   * The admin API can stop workers and shows the whole config: it binds a non-loopback address
   * only when this says so explicitly (and then logs a warning at every start).
   */
  allow_remote: z.boolean().default(false),
  /**
   * Host header values accepted besides the admin's own address and loopback names (DNS
   * rebinding defence: a browser tricked into calling the admin sends the attacker's name).
   */
  allowed_hosts: z.array(z.string().min(1)).default([]),
}).strict().superRefine((a, ctx) => {
  if (!a.allow_remote && !isLoopback(a.address.host)) {
    ctx.addIssue({ code: 'custom', path: ['address'], message: `${a.address.host} is not a loopback address; the admin API can stop workers and read the config, so set allow_remote: true to expose it on purpose` });
  }
});

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

const workers = z.object({
  /** Worker threads; overrides the default of `--threads` (available cores), not an explicit one. */
  threads: z.number().int().min(1).max(32).optional(),
  /** Replace every worker thread on reload (new ones take new connections, old ones drain). */
  replace_on_reload: z.boolean().default(false),
}).strict();

export const configSchema = z.object({
  /** The JSON Schema a JSON config names for its editor (ignored; YAML uses a modeline comment). */
  $schema: z.string().optional(),
  version: z.literal(1, { error: 'expected version: 1' }),
  workers: workers.default({ replace_on_reload: false }),
  admin: admin.default({ address: { host: '127.0.0.1', port: 9901 }, allow_remote: false, allowed_hosts: [] }),
  log: z.object({ level: z.enum(LOG_LEVELS).default('info') }).strict().default({ level: 'info' }),
  /** How long open connections may finish after SIGTERM (or an upgrade) before they are closed. */
  drain_timeout: duration.default(30_000),
  /** How long a new process may take to become ready in an upgrade before it is rolled back. */
  upgrade_timeout: duration.default(30_000),
  /**
   * In an upgrade, move established connections (HTTP/1, HTTP/2, Bolt, Dubbo, TCP) to the new
   * process instead of draining them; false: drain as before.
   */
  connection_migration: z.boolean().default(true),
  listeners: z.array(listener).min(1, 'at least one listener is required'),
  clusters: z.array(cluster).min(1, 'at least one cluster is required'),
}).strict();

/**
 * A config built from xDS (src/xds/): the same fields, but it may start with no listener and no
 * cluster until the control plane sends them, and a cluster may have no host.
 */
export const xdsConfigSchema = configSchema.extend({
  listeners: z.array(listener),
  // An EDS cluster may have no endpoint (scaled to zero): its requests get "no healthy upstream".
  clusters: z.array(cluster.extend({ hosts: z.array(hostEntry) })),
});
/** One element of an xDS config's lists: parsed alone when only it changed (xds/generation-parser.ts). */
export const xdsListenerSchema = xdsConfigSchema.shape.listeners.element;
export const xdsClusterSchema = xdsConfigSchema.shape.clusters.element;

/**
 * Cross-references (unknown cluster, duplicate names and addresses), checked on the raw input so
 * they are reported in the same pass as shape errors, even when the shape is wrong elsewhere.
 */
export function crossReferenceProblems(raw: unknown): { path: PropertyKey[]; message: string }[] {
  const problems: { path: PropertyKey[]; message: string }[] = [];
  const root = (raw && typeof raw === 'object' ? raw : {}) as Record<string, unknown>;
  const list = (key: string) => (Array.isArray(root[key]) ? (root[key] as unknown[]) : []).map((v) => (v && typeof v === 'object' ? v : {}) as Record<string, unknown>);
  const clusterNames = new Set<unknown>();
  list('clusters').forEach((c, i) => {
    if (typeof c.name !== 'string') return;
    if (clusterNames.has(c.name)) problems.push({ path: ['clusters', i, 'name'], message: `duplicate cluster name "${c.name}"` });
    clusterNames.add(c.name);
  });
  /** A route's cluster or weighted clusters must name defined clusters. */
  const routeClusters = (r: Record<string, unknown> | null | undefined, at: PropertyKey[]) => {
    if (r && typeof r.cluster === 'string' && !clusterNames.has(r.cluster)) problems.push({ path: [...at, 'cluster'], message: `unknown cluster "${r.cluster}"` });
    if (r && Array.isArray(r.request_mirror_policies)) {
      (r.request_mirror_policies as { cluster?: unknown }[]).forEach((m, mi) => {
        if (m && typeof m.cluster === 'string' && !clusterNames.has(m.cluster)) problems.push({ path: [...at, 'request_mirror_policies', mi, 'cluster'], message: `unknown cluster "${m.cluster}"` });
      });
    }
    if (r && Array.isArray(r.weighted_clusters)) {
      (r.weighted_clusters as { name?: unknown }[]).forEach((w, wi) => {
        if (w && typeof w.name === 'string' && !clusterNames.has(w.name)) problems.push({ path: [...at, 'weighted_clusters', wi, 'name'], message: `unknown cluster "${w.name}"` });
      });
    }
  };
  const listenerNames = new Set<unknown>();
  const addresses = new Set<unknown>();
  list('listeners').forEach((l, i) => {
    if (typeof l.name === 'string') {
      if (listenerNames.has(l.name)) problems.push({ path: ['listeners', i, 'name'], message: `duplicate listener name "${l.name}"` });
      listenerNames.add(l.name);
    }
    if (typeof l.address === 'string' && !l.address.endsWith(':0')) {
      if (addresses.has(l.address)) problems.push({ path: ['listeners', i, 'address'], message: `${l.address} is used by another listener` });
      addresses.add(l.address);
    }
    if (typeof l.cluster === 'string' && !clusterNames.has(l.cluster)) problems.push({ path: ['listeners', i, 'cluster'], message: `unknown cluster "${l.cluster}"` });
    (Array.isArray(l.sni_routes) ? (l.sni_routes as Record<string, unknown>[]) : []).forEach((r, ri) => routeClusters(r, ['listeners', i, 'sni_routes', ri]));
    const vhosts = Array.isArray(l.virtual_hosts) ? (l.virtual_hosts as Record<string, unknown>[]) : [];
    vhosts.forEach((vh, v) => {
      const routes = vh && Array.isArray(vh.routes) ? (vh.routes as Record<string, unknown>[]) : [];
      routes.forEach((r, ri) => routeClusters(r, ['listeners', i, 'virtual_hosts', v, 'routes', ri]));
    });
    const rpc = l.rpc && typeof l.rpc === 'object' ? (l.rpc as Record<string, unknown>) : {};
    (Array.isArray(rpc.routes) ? (rpc.routes as Record<string, unknown>[]) : []).forEach((r, ri) => routeClusters(r, ['listeners', i, 'rpc', 'routes', ri]));
  });
  return problems;
}

export type ShuttleConfig = z.output<typeof configSchema>;
export type ListenerConfig = ShuttleConfig['listeners'][number];
export type ClusterConfig = ShuttleConfig['clusters'][number];
export type HostConfig = ClusterConfig['hosts'][number];
export type HealthCheckConfig = NonNullable<ClusterConfig['health_check']>;
export type CircuitBreakersConfig = NonNullable<ClusterConfig['circuit_breakers']>;
export type OutlierDetectionConfig = NonNullable<ClusterConfig['outlier_detection']>;
export type LbPolicy = (typeof LB_POLICIES)[number];
export type LogLevel = (typeof LOG_LEVELS)[number];
export type AccessLogConfig = ListenerConfig['access_log'];
export type AccessLogField = (typeof ACCESS_LOG_FIELDS)[number];
