/**
 * HTTP routing, built once per listener from the frozen config and shared by every request:
 *
 *   Host ─▶ virtual host (exact > *.suffix (longest) > prefix.* (longest) > *)
 *        ─▶ first route whose match fits (path prefix/exact/regex, method, headers, query)
 *        ─▶ action: cluster | weighted clusters | direct response | redirect
 */
import { compileSafeRegex } from '../regex/safe-regex.ts';
import type { HeaderToAdd, RetryPolicyConfig, RouteConfig, ValueMatcherConfig, VirtualHostConfig } from '../config/route-schema.ts';

export interface RequestView {
  method: string;
  /** Path without the query string. */
  path: string;
  query: string;
  /** Lower-cased header name → values. */
  header(name: string): string | undefined;
  /** The client's TLS identity (mTLS), see route match peer_identity. */
  readonly peerIdentity?: string;
}

/**
 * A query parameter's value with URLSearchParams semantics: `+` is a space, a malformed escape
 * (`%zz`) stays as it is instead of throwing, names compare case-sensitively (Envoy's rule).
 * The first occurrence wins; undefined when absent.
 */
export function queryParam(query: string, name: string): string | undefined {
  if (query.length === 0) return undefined;
  return new URLSearchParams(query).get(name) ?? undefined;
}

export interface Route {
  readonly name: string;
  readonly virtualHost: string;
  readonly config: RouteConfig;
  readonly timeout: number;
  readonly retry: RetryPolicyConfig | undefined;
  /** Picks the cluster for one request (weighted clusters draw here). */
  cluster(random?: () => number): string | undefined;
  readonly requestHeadersToAdd: readonly HeaderToAdd[];
  readonly requestHeadersToRemove: ReadonlySet<string>;
  readonly responseHeadersToAdd: readonly HeaderToAdd[];
  readonly responseHeadersToRemove: ReadonlySet<string>;
}

type Matcher = (req: RequestView) => boolean;

/** A route's cluster: the named one, or a weighted draw (canary / A-B splits). */
export function clusterPicker(cluster: string | undefined, weighted: readonly { name: string; weight: number }[] | undefined): (random?: () => number) => string | undefined {
  if (cluster) return () => cluster;
  const total = weighted?.reduce((n, w) => n + w.weight, 0) ?? 0;
  return (random = Math.random) => {
    if (!weighted || total === 0) return undefined;
    let point = random() * total;
    for (const w of weighted) {
      point -= w.weight;
      if (point < 0) return w.name;
    }
    return weighted[weighted.length - 1].name;
  };
}

/**
 * An exact/regex/present condition on a value looked up by name (headers, query, attachments).
 * Header names are case-insensitive (looked up lower-cased); query parameter names are not.
 */
export function valueMatcher<R>(m: ValueMatcherConfig, get: (req: R, name: string) => string | undefined, caseSensitiveName = false): (req: R) => boolean {
  const re = m.regex !== undefined ? compileSafeRegex(m.regex) : undefined;
  const name = caseSensitiveName ? m.name : m.name.toLowerCase();
  const exact = m.ignore_case ? m.exact?.toLowerCase() : m.exact;
  const test = (v: string | undefined): boolean => {
    if (m.present !== undefined) return (v !== undefined) === m.present;
    if (v === undefined) return false;
    if (re) return re.matches(v);
    return (m.ignore_case ? v.toLowerCase() : v) === exact;
  };
  return (req) => test(get(req, name)) !== m.invert;
}

function compileRoute(config: RouteConfig, virtualHost: string, index: number): { route: Route; matches: Matcher } {
  const m = config.match;
  const checks: Matcher[] = [];
  if (m.path !== undefined) {
    const path = m.case_sensitive ? m.path : m.path.toLowerCase();
    checks.push(m.case_sensitive ? (r) => r.path === path : (r) => r.path.toLowerCase() === path);
  } else if (m.regex !== undefined) {
    const re = compileSafeRegex(m.regex);
    checks.push((r) => re.matches(r.path));
  } else if (m.prefix !== undefined && m.prefix !== '/') {
    const prefix = m.case_sensitive ? m.prefix : m.prefix.toLowerCase();
    checks.push(m.case_sensitive ? (r) => r.path.startsWith(prefix) : (r) => r.path.toLowerCase().startsWith(prefix));
  }
  if (m.methods) {
    const methods = new Set(m.methods);
    checks.push((r) => methods.has(r.method));
  }
  for (const h of m.headers) checks.push(valueMatcher(h, (req, name) => req.header(name)));
  for (const q of m.query_params) checks.push(valueMatcher(q, (req: RequestView, name) => queryParam(req.query, name), true));
  if (m.peer_identity) checks.push(valueMatcher({ name: '', invert: false, ignore_case: false, ...m.peer_identity }, (req: RequestView) => req.peerIdentity || undefined, true));

  const pick = clusterPicker(config.cluster, config.weighted_clusters);
  const route: Route = {
    name: config.name ?? `${virtualHost}/${index}`,
    virtualHost,
    config,
    timeout: config.timeout,
    retry: config.retry_policy,
    cluster: pick,
    requestHeadersToAdd: config.request_headers_to_add,
    requestHeadersToRemove: new Set(config.request_headers_to_remove.map((h) => h.toLowerCase())),
    responseHeadersToAdd: config.response_headers_to_add,
    responseHeadersToRemove: new Set(config.response_headers_to_remove.map((h) => h.toLowerCase())),
  };
  const matches: Matcher = checks.length === 0 ? () => true : checks.length === 1 ? checks[0] : (r) => {
    for (let k = 0; k < checks.length; k++) if (!checks[k](r)) return false; // (no closure per request)
    return true;
  };
  return { route, matches };
}

interface CompiledVirtualHost {
  name: string;
  routes: { route: Route; matches: Matcher }[];
}

export class Router {
  private readonly exact = new Map<string, CompiledVirtualHost>();
  /** "*.example.com" → ".example.com", longest first. */
  private readonly suffixes: [string, CompiledVirtualHost][] = [];
  /** "example.*" → "example.", longest first. */
  private readonly prefixes: [string, CompiledVirtualHost][] = [];
  private fallback: CompiledVirtualHost | undefined;
  /**
   * The last authority looked up and its virtual host. Why: a connection's requests name the same
   * authority (an HTTP/2 peer sends the very string from its HPACK table), and the lookup past an
   * exact miss slices the port off (a new string, hashed) on every request.
   */
  private lastAuthority = '';
  private lastVirtualHost: CompiledVirtualHost | undefined;

  constructor(virtualHosts: readonly VirtualHostConfig[]) {
    for (const vh of virtualHosts) {
      const compiled: CompiledVirtualHost = { name: vh.name, routes: vh.routes.map((r, i) => compileRoute(r, vh.name, i)) };
      for (const d of vh.domains.map((x) => x.toLowerCase())) {
        if (d === '*') this.fallback ??= compiled;
        else if (d.startsWith('*')) this.suffixes.push([d.slice(1), compiled]);
        else if (d.endsWith('*')) this.prefixes.push([d.slice(0, -1), compiled]);
        else if (!this.exact.has(d)) this.exact.set(d, compiled);
      }
    }
    this.suffixes.sort((a, b) => b[0].length - a[0].length);
    this.prefixes.sort((a, b) => b[0].length - a[0].length);
  }

  /** The route for a request to `authority`, or undefined (404). */
  route(authority: string, req: RequestView): Route | undefined {
    const vh = this.virtualHost(authority.toLowerCase());
    if (!vh) return undefined;
    for (const r of vh.routes) if (r.matches(req)) return r.route;
    return undefined;
  }

  private virtualHost(authority: string): CompiledVirtualHost | undefined {
    if (authority === this.lastAuthority && authority !== '') return this.lastVirtualHost;
    const vh = this.lookUp(authority);
    this.lastAuthority = authority;
    this.lastVirtualHost = vh;
    return vh;
  }

  private lookUp(authority: string): CompiledVirtualHost | undefined {
    const exact = this.exact.get(authority);
    if (exact) return exact;
    // Match with the port too (domains may name one), then without it.
    const colon = authority.lastIndexOf(':');
    const host = colon > 0 && !authority.endsWith(']') ? authority.slice(0, colon) : authority;
    const byHost = this.exact.get(host);
    if (byHost) return byHost;
    for (const [suffix, vh] of this.suffixes) if (host.endsWith(suffix) && host.length > suffix.length) return vh;
    for (const [prefix, vh] of this.prefixes) if (host.startsWith(prefix) && host.length > prefix.length) return vh;
    return this.fallback;
  }
}
