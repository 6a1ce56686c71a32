/**
 * Route configuration for HTTP listeners (Envoy's route_config, flattened): virtual hosts chosen
 * by the Host header, then the first route whose match fits, then its action.
 */
import { z } from 'zod';
import { regexProblem } from '../regex/safe-regex.ts';

/**
 * A duration always carries its unit, as in Envoy: a bare number is refused rather than silently
 * read as milliseconds (`timeout: 2` is far more often meant as seconds). Only `0` may stand alone.
 */
export const duration = z.union([z.number(), z.string()]).transform((value, ctx) => {
  if (value === 0 || value === '0') return 0;
  if (typeof value === 'number') {
    ctx.addIssue({ code: 'custom', message: `a duration needs a unit: write ${value}s or ${value}ms` });
    return z.NEVER;
  }
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(value.trim());
  if (m) return Math.round(Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h']);
  ctx.addIssue({ code: 'custom', message: /^\d+(\.\d+)?$/.test(value.trim()) ? `a duration needs a unit: write ${value.trim()}s or ${value.trim()}ms` : 'expected a duration such as 250ms, 5s, 1m or 1h' });
  return z.NEVER;
}).meta({ 'x-shuttle': 'duration' }); // its JSON Schema: src/config/json-schema.ts

/** A route's per-filter config (checked against the listener's filters in filter-schema.ts). */
const perFilterConfig = z.record(z.string().min(1), z.unknown());

/** A regular expression in RE2 syntax, matched against the whole value (src/regex/safe-regex.ts). */
export const regex = z.string().superRefine((pattern, ctx) => {
  const problem = regexProblem(pattern);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

export const headerName = z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'expected a header name');

/**
 * A header or query parameter condition: exactly one of exact, regex, present. As in Envoy, header
 * names compare case-insensitively, query parameter names case-sensitively, and values
 * case-sensitively unless `ignore_case` (exact only; a regex says `(?i)` itself).
 */
export const valueMatcher = z.object({
  name: z.string().min(1),
  exact: z.string().optional(),
  regex: regex.optional(),
  present: z.boolean().optional(),
  ignore_case: z.boolean().default(false),
  invert: z.boolean().default(false),
}).strict()
  .refine((m) => [m.exact, m.regex, m.present].filter((v) => v !== undefined).length === 1, { message: 'give exactly one of exact, regex, present' })
  .refine((m) => !m.ignore_case || m.exact !== undefined, { message: 'ignore_case applies to exact; a regex is made case-insensitive with (?i)', path: ['ignore_case'] });

const routeMatch = z.object({
  prefix: z.string().startsWith('/').optional(),
  path: z.string().startsWith('/').optional(),
  regex: regex.optional(),
  /** prefix and path compare case-sensitively unless false (Envoy's case_sensitive; a regex uses (?i)). */
  case_sensitive: z.boolean().default(true),
  headers: z.array(valueMatcher).default([]),
  query_params: z.array(valueMatcher).default([]),
  methods: z.array(z.string().regex(/^[A-Z]+$/, 'expected an upper-case method')).optional(),
  /**
   * The client's TLS identity (mTLS): its first URI SAN (a SPIFFE id), else its first DNS SAN,
   * else its subject CN; `present: false` matches a connection without one.
   */
  peer_identity: z.object({ exact: z.string().optional(), regex: regex.optional(), present: z.boolean().optional() }).strict()
    .refine((m) => [m.exact, m.regex, m.present].filter((v) => v !== undefined).length === 1, { message: 'give exactly one of exact, regex, present' }).optional(),
}).strict().refine((m) => [m.prefix, m.path, m.regex].filter((v) => v !== undefined).length <= 1, { message: 'give at most one of prefix, path, regex' });

export const headerToAdd = z.object({
  name: headerName,
  value: z.string().regex(/^[^\r\n\0]*$/, 'header values cannot hold CR, LF or NUL'),
  /** Append to an existing value list instead of replacing it. */
  append: z.boolean().default(false),
}).strict();

/** HTTP conditions, then gRPC statuses (of a Trailers-Only response), as Envoy names them. */
export const RETRY_ON = [
  'connect-failure', 'reset', 'refused-stream', '5xx', 'gateway-error', 'retriable-status-codes',
  'cancelled', 'deadline-exceeded', 'resource-exhausted', 'unavailable', 'internal',
] as const;

const retryPolicy = z.object({
  retry_on: z.array(z.enum(RETRY_ON)).min(1).default(['connect-failure', 'reset']),
  num_retries: z.number().int().min(0).max(10).default(1),
  retriable_status_codes: z.array(z.number().int().min(100).max(599)).default([]),
  /** 0: the route timeout alone applies. */
  per_try_timeout: duration.default(0),
  /** Retry POST and other non-idempotent methods too (off by default: they may have taken effect). */
  retry_non_idempotent: z.boolean().default(false),
}).strict();

/** What a consistent-hash cluster (ring_hash, maglev) hashes for a request (Envoy's hash_policy). */
const hashPolicy = z.object({
  header: z.object({ name: headerName }).strict().optional(),
  /** A cookie the client sends (Shuttle does not make one up: Envoy's `ttl` is not supported). */
  cookie: z.object({ name: z.string().min(1) }).strict().optional(),
  query_parameter: z.object({ name: z.string().min(1) }).strict().optional(),
  /** The client's address. */
  source_ip: z.literal(true).optional(),
  /** When this policy finds a value, the policies after it are not looked at. */
  terminal: z.boolean().default(false),
}).strict().refine((p) => [p.header, p.cookie, p.query_parameter, p.source_ip].filter((v) => v !== undefined).length === 1, { message: 'give exactly one of header, cookie, query_parameter, source_ip' });

const route = z.object({
  name: z.string().optional(),
  match: routeMatch.default({ prefix: '/', case_sensitive: true, headers: [], query_params: [] }),
  cluster: z.string().optional(),
  weighted_clusters: z.array(z.object({ name: z.string(), weight: z.number().int().min(0).max(10_000) }).strict()).min(1).optional(),
  direct_response: z.object({ status: z.number().int().min(200).max(599), body: z.string().default('') }).strict().optional(),
  redirect: z.object({
    scheme: z.enum(['http', 'https']).optional(),
    host: z.string().optional(),
    path: z.string().startsWith('/').optional(),
    prefix_rewrite: z.string().optional(),
    status: z.union([z.literal(301), z.literal(302), z.literal(303), z.literal(307), z.literal(308)]).default(301),
  }).strict().optional(),
  /** Until the whole response is received; 0 disables (Envoy: 15s). */
  timeout: duration.default(15_000),
  retry_policy: retryPolicy.optional(),
  /** Which of the cluster's circuit-breaker thresholds the request counts against. */
  priority: z.enum(['default', 'high']).default('default'),
  /** Copies of a share of requests sent to other clusters, fire and forget (Envoy's shadowing). */
  request_mirror_policies: z.array(z.object({
    cluster: z.string(),
    /** Share of requests mirrored, 0–100. */
    percentage: z.number().min(0).max(100).default(100),
  }).strict()).max(4).default([]),
  prefix_rewrite: z.string().optional(),
  host_rewrite: z.string().optional(),
  request_headers_to_add: z.array(headerToAdd).default([]),
  request_headers_to_remove: z.array(headerName).default([]),
  response_headers_to_add: z.array(headerToAdd).default([]),
  response_headers_to_remove: z.array(headerName).default([]),
  /** Per filter of the listener's http_filters: { disabled: true } or a config replacing its own here. */
  per_filter_config: perFilterConfig.optional(),
  /** For clusters with lb_policy ring_hash or maglev: what picks the host (no value: a host at random). */
  hash_policy: z.array(hashPolicy).max(8).optional(),
}).strict().refine((r) => [r.cluster, r.weighted_clusters, r.direct_response, r.redirect].filter((v) => v !== undefined).length === 1, {
  message: 'give exactly one of cluster, weighted_clusters, direct_response, redirect',
});

const domain = z.string().regex(/^(\*|\*?[A-Za-z0-9.-]+\*?)(:\d+)?$/, 'expected a domain such as example.com, *.example.com, example.* or *');

export const virtualHost = z.object({
  name: z.string().min(1),
  domains: z.array(domain).min(1),
  routes: z.array(route).min(1),
}).strict();

/** HTTP/2 settings of a listener (what Shuttle advertises to clients) and its abuse limits. */
export const http2Options = z.object({
  /** SETTINGS_MAX_CONCURRENT_STREAMS; a stream beyond it is refused (RST_STREAM REFUSED_STREAM). */
  max_concurrent_streams: z.number().int().min(1).max(2_147_483_647).default(100),
  /** SETTINGS_INITIAL_WINDOW_SIZE: how much of one request body may be in flight to Shuttle. */
  initial_stream_window_size: z.number().int().min(65_535).max(2_147_483_647).default(256 * 1024),
  /** The connection's window, kept open as data is read. */
  initial_connection_window_size: z.number().int().min(65_535).max(2_147_483_647).default(1024 * 1024),
  /** SETTINGS_MAX_FRAME_SIZE. */
  max_frame_size: z.number().int().min(16_384).max(16_777_215).default(16_384),
  /** SETTINGS_HEADER_TABLE_SIZE (HPACK dynamic table for what clients send). */
  header_table_size: z.number().int().min(0).max(65_536).default(4096),
  /**
   * A client that resets more than this share of its streams (after the first 100) is sent
   * GOAWAY (rapid reset, CVE-2023-44487).
   */
  max_reset_stream_ratio: z.number().min(0).max(1).default(0.5),
}).strict();

/** HTTP/2 to upstream hosts. */
export const http2ClientOptions = z.object({
  /** Streams per connection before another connection is opened (at most the host's own limit). */
  max_concurrent_streams: z.number().int().min(1).max(2_147_483_647).default(100),
  /** Connections per host and worker. */
  max_connections: z.number().int().min(1).max(1024).default(4),
  initial_stream_window_size: z.number().int().min(65_535).max(2_147_483_647).default(1024 * 1024),
  initial_connection_window_size: z.number().int().min(65_535).max(2_147_483_647).default(4 * 1024 * 1024),
}).strict();

export const httpOptions = z.object({
  /**
   * Which HTTP protocols the listener speaks (Envoy's codec_type): `auto` serves HTTP/1.1 and
   * HTTP/2 (prior knowledge) on one port, told apart by the first bytes; `http1` or `http2` only
   * one of them (then bytes that are not that protocol get its own error: 400, or GOAWAY).
   */
  codec: z.enum(['auto', 'http1', 'http2']).default('auto'),
  /** Largest request header section; beyond it: 431. */
  max_request_headers_kb: z.number().int().min(1).max(1024).default(60),
  max_headers: z.number().int().min(1).max(1000).default(100),
  /** Largest request body; beyond it: 413. */
  max_request_body_bytes: z.number().int().min(0).default(100 * 1024 * 1024),
  /** Time allowed for a request's header section to arrive (slow-loris defence). */
  request_headers_timeout: duration.default(10_000),
  /**
   * A request with no byte moving (request body in, response out) for this long ends: 408 while
   * the request is still arriving, 504 while waiting for the upstream, a reset once the response
   * started (Envoy's stream_idle_timeout, 5 min). 0: off, leaving the route timeout alone.
   */
  stream_idle_timeout: duration.default(300_000),
  /** Bytes of a request body kept for retries; a longer body is not retried. */
  retry_buffer_bytes: z.number().int().min(0).max(16 * 1024 * 1024).default(64 * 1024),
  /** HTTP/2 (served on the same port as HTTP/1.1: prior knowledge now, ALPN with TLS). */
  http2: http2Options.default(http2Options.parse({})),
}).strict();

export const connectionPool = z.object({
  max_connections_per_host: z.number().int().min(1).max(100_000).default(1024),
  max_pending_requests: z.number().int().min(0).max(100_000).default(1024),
  idle_timeout: duration.default(60_000),
  /** 0: unlimited. */
  max_requests_per_connection: z.number().int().min(0).default(0),
}).strict();

export const retryBudget = z.object({
  /** Retries in flight may be at most this percentage of requests in flight (per worker)… */
  budget_percent: z.number().min(0).max(100).default(20),
  /** …but this many are always allowed. */
  min_retry_concurrency: z.number().int().min(0).default(3),
}).strict();

/** RPC routing (Bolt, Dubbo): the first route whose match fits the request's service and headers. */
const rpcRoute = z.object({
  name: z.string().optional(),
  match: z.object({
    /** Only calls of this protocol (an auto listener may carry both). */
    protocol: z.enum(['bolt', 'dubbo']).optional(),
    /** The service (Bolt header `service`, Dubbo service path), exact or regex. */
    service: z.string().optional(),
    service_regex: regex.optional(),
    /** The method, where the protocol carries it in a header. */
    method: z.string().optional(),
    headers: z.array(valueMatcher).default([]),
  }).strict().default({ headers: [] }),
  cluster: z.string().optional(),
  weighted_clusters: z.array(z.object({ name: z.string(), weight: z.number().int().min(0).max(10_000) }).strict()).min(1).optional(),
  /** 0: the caller's own timeout from the frame applies (or none). */
  timeout: duration.default(0),
  /** Which of the cluster's circuit-breaker thresholds the call counts against. */
  priority: z.enum(['default', 'high']).default('default'),
  /**
   * Retry a call whose upstream connection was lost with it in flight, on another host. Only for
   * idempotent services: the first host may have executed it. (A connect failure, where nothing
   * was sent, is always tried on the next host.)
   */
  retry_policy: z.object({ idempotent: z.literal(true), num_retries: z.number().int().min(1).max(5).default(1) }).strict().optional(),
  /** Per filter of the listener's rpc_filters: { disabled: true } or a config replacing its own here. */
  per_filter_config: perFilterConfig.optional(),
}).strict().refine((r) => [r.cluster, r.weighted_clusters].filter((v) => v !== undefined).length === 1, { message: 'give exactly one of cluster, weighted_clusters' });

export const rpcOptions = z.object({
  routes: z.array(rpcRoute).min(1),
  /** A frame larger than this closes the connection. */
  max_frame_bytes: z.number().int().min(1024).max(256 * 1024 * 1024).default(16 * 1024 * 1024),
  /** Multiplexed upstream connections per host, per worker. */
  connections_per_host: z.number().int().min(1).max(64).default(1),
}).strict();

export type RpcRouteConfig = z.output<typeof rpcRoute>;
export type RpcOptionsConfig = z.output<typeof rpcOptions>;
export type VirtualHostConfig = z.output<typeof virtualHost>;
export type RouteConfig = VirtualHostConfig['routes'][number];
export type RouteMatchConfig = RouteConfig['match'];
export type ValueMatcherConfig = RouteMatchConfig['headers'][number];
export type HeaderToAdd = RouteConfig['request_headers_to_add'][number];
export type RetryPolicyConfig = NonNullable<RouteConfig['retry_policy']>;
export type HashPolicyConfig = z.output<typeof hashPolicy>;
export type HttpOptionsConfig = z.output<typeof httpOptions>;
export type Http2OptionsConfig = z.output<typeof http2Options>;
export type Http2ClientOptionsConfig = z.output<typeof http2ClientOptions>;
