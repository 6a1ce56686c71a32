/**
 * An HTTP connection manager's http_filters, and routes' typed_per_filter_config, as Shuttle's
 * filter chain (src/filters/): fault, rbac, jwt_authn, cors, local_ratelimit, header_mutation,
 * compressor, each read field by field like every resource (fields.ts). What a filter's Envoy
 * config says that Shuttle's filter cannot do is refused with its path, never dropped; a filter
 * that Envoy would run as a no-op (RBAC without rules, a rate limit enabled for 0% of requests)
 * is left out of the chain.
 */
import { headerMatcher, headersToAdd, ms, stringMatcher } from './envoy-types.ts';
import { Fields, XdsFieldError } from './fields.ts';
import { xdsRoot } from './protos.ts';

type Raw = Record<string, unknown>;

const T = 'type.googleapis.com/envoy.extensions.filters.http';
export const FAULT_TYPE = `${T}.fault.v3.HTTPFault`;
const RBAC_TYPE = `${T}.rbac.v3.RBAC`;
const RBAC_PER_ROUTE_TYPE = `${T}.rbac.v3.RBACPerRoute`;
const JWT_TYPE = `${T}.jwt_authn.v3.JwtAuthentication`;
const CORS_TYPE = `${T}.cors.v3.Cors`;
const CORS_POLICY_TYPE = `${T}.cors.v3.CorsPolicy`;
const LOCAL_RATELIMIT_TYPE = `${T}.local_ratelimit.v3.LocalRateLimit`;
const HEADER_MUTATION_TYPE = `${T}.header_mutation.v3.HeaderMutation`;
const HEADER_MUTATION_PER_ROUTE_TYPE = `${T}.header_mutation.v3.HeaderMutationPerRoute`;
const COMPRESSOR_TYPE = `${T}.compressor.v3.Compressor`;
const GZIP_TYPE = 'type.googleapis.com/envoy.extensions.compression.gzip.compressor.v3.Gzip';
const BROTLI_TYPE = 'type.googleapis.com/envoy.extensions.compression.brotli.compressor.v3.Brotli';
const ZSTD_TYPE = 'type.googleapis.com/envoy.extensions.compression.zstd.compressor.v3.Zstd';


/** Each filter type: the Shuttle filter it becomes and its mapper (undefined: a no-op here). */
const LISTENER_FILTERS: Record<string, { name: string; map: (f: Fields) => Raw | undefined }> = {
  [FAULT_TYPE]: { name: 'fault', map: fault },
  [RBAC_TYPE]: { name: 'rbac', map: rbac },
  [JWT_TYPE]: { name: 'jwt_authn', map: jwtAuthn },
  [CORS_TYPE]: { name: 'cors', map: cors },
  [LOCAL_RATELIMIT_TYPE]: { name: 'local_ratelimit', map: localRateLimit },
  [HEADER_MUTATION_TYPE]: { name: 'header_mutation', map: headerMutation },
  [COMPRESSOR_TYPE]: { name: 'compressor', map: compressor },
};

/** typed_per_filter_config types: the Shuttle filter and its per-route config. */
const PER_ROUTE: Record<string, { name: string; map: (f: Fields) => Raw }> = {
  [FAULT_TYPE]: { name: 'fault', map: fault },
  [RBAC_PER_ROUTE_TYPE]: { name: 'rbac', map: rbacPerRoute },
  [CORS_POLICY_TYPE]: { name: 'cors', map: corsPolicy },
  [LOCAL_RATELIMIT_TYPE]: { name: 'local_ratelimit', map: (f) => localRateLimit(f) ?? { disabled: true } },
  [HEADER_MUTATION_PER_ROUTE_TYPE]: { name: 'header_mutation', map: (f) => {
    const out = headerMutation(f.requiredMessage('mutations'), true);
    f.done();
    return out;
  } },
};

/**
 * The HCM's http_filters → Shuttle's http_filters (the router last, as Envoy requires; it is the
 * proxy itself in Shuttle, so it is not a filter there).
 */
export function mapHttpFilters(h: Fields, key: string, routerType: string): Raw[] {
  const filters = h.list(key);
  if (filters.length === 0) h.fail(key, 'the router must be the last HTTP filter (and there must be one)');
  const out: Raw[] = [];
  filters.forEach((hf, i) => {
    const typed = hf.message('typed_config');
    const type = typed?.str('@type');
    const name = hf.str('name');
    const isRouter = type === routerType || (!typed && name === 'envoy.filters.http.router');
    if (isRouter !== (i === filters.length - 1)) hf.fail('name', 'the router must be the last HTTP filter (and there must be one)');
    if (hf.bool('is_optional')) hf.fail('is_optional', 'optional filters are not supported');
    if (hf.bool('disabled')) hf.fail('disabled', 'filters disabled until a route enables them are not supported');
    if (isRouter) typed?.skip('start_child_span', 'suppress_envoy_headers').done();
    else {
      const known = type !== undefined ? LISTENER_FILTERS[type] : undefined;
      if (known === undefined) return hf.fail('typed_config', `HTTP filter ${name ?? type ?? '(unnamed)'} is not supported (${Object.values(LISTENER_FILTERS).map((f) => f.name).join(', ')} and the router are)`);
      const config = known.map(typed!);
      if (config !== undefined) {
        if (out.some((f) => f.name === known.name)) hf.fail('typed_config', `a second ${known.name} filter: Shuttle runs one of each (routes vary it with typed_per_filter_config)`);
        out.push({ name: known.name, config });
      }
    }
    hf.done();
  });
  return out;
}

/**
 * typed_per_filter_config (a route's or virtual host's): the config a filter of the listener uses
 * for these routes, by the filter's type (the key names the filter in Envoy's chain; Shuttle has
 * one filter of each type). envoy.config.route.v3.FilterConfig wrappers are unwrapped.
 */
export function perFilterConfig(m: Fields | undefined): Raw | undefined {
  if (!m) return undefined;
  const out: Raw = {};
  for (const key of m.keys()) {
    let typed = m.requiredMessage(key);
    if (typed.str('@type') === 'type.googleapis.com/envoy.config.route.v3.FilterConfig') {
      if (typed.bool('is_optional')) typed.fail('is_optional', 'optional filters are not supported');
      if (typed.bool('disabled')) {
        typed.skip('config');
        typed.done();
        continue;
      }
      const inner = typed.requiredMessage('config');
      typed.done();
      typed = inner;
    }
    const type = typed.str('@type') ?? '';
    const known = PER_ROUTE[type];
    if (!known) throw new XdsFieldError(typed.path, `per-route config ${type || key} is not supported (${Object.keys(PER_ROUTE).map((t) => t.slice(t.lastIndexOf('.') + 1)).join(', ')} are)`);
    out[known.name] = known.map(typed);
  }
  m.done();
  return out;
}

// ---- fault ------------------------------------------------------------------------------------

/** type.v3.FractionalPercent → a percentage (Envoy's default: 0). */
export function fraction(f: Fields | undefined): number {
  if (!f) return 0;
  const num = f.num('numerator') ?? 0;
  const den = ({ HUNDRED: 100, TEN_THOUSAND: 10_000, MILLION: 1_000_000 } as Record<string, number>)[f.str('denominator') ?? 'HUNDRED'] ?? f.fail('denominator', 'expected HUNDRED, TEN_THOUSAND or MILLION');
  f.done();
  return Math.min(100, (num / den) * 100);
}

/** envoy.extensions.filters.http.fault.v3.HTTPFault → Shuttle's fault filter config. */
function fault(f: Fields): Raw {
  const out: Raw = {};
  const abort = f.message('abort');
  if (abort) {
    const a: Raw = { percentage: fraction(abort.message('percentage')) };
    const http = abort.num('http_status');
    const grpc = abort.num('grpc_status');
    const header = abort.message('header_abort');
    if (http !== undefined) a.http_status = http;
    else if (grpc !== undefined) a.grpc_status = grpc;
    else if (header) {
      header.done();
      out.header_controlled = true;
    } else abort.fail('http_status', 'one of http_status, grpc_status, header_abort is required');
    abort.done();
    if (!header) out.abort = a;
  }
  const delay = f.message('delay');
  if (delay) {
    const fixed = delay.durationMs('fixed_delay');
    const header = delay.message('header_delay');
    const percentage = fraction(delay.message('percentage'));
    if (fixed !== undefined && fixed > 0) out.delay = { fixed_delay: ms(fixed), percentage };
    else if (header) {
      header.done();
      out.header_controlled = true;
    } else delay.fail('fixed_delay', 'a fixed_delay above zero or header_delay is required');
    delay.done();
  }
  const headers = f.list('headers').map(headerMatcher);
  if (headers.length > 0) out.headers = headers;
  const nodes = f.strings('downstream_nodes');
  if (nodes.length > 0) out.downstream_nodes = nodes;
  const max = f.wrapped('max_active_faults');
  if (max !== undefined && max > 0) out.max_active_faults = max;
  if (f.has('upstream_cluster')) f.fail('upstream_cluster', 'faults for one upstream cluster are not supported');
  if (f.has('response_rate_limit')) f.fail('response_rate_limit', 'response rate limits are not supported');
  // Runtime keys name overrides in Envoy's runtime, which Shuttle does not have: the config's values apply.
  f.skip('delay_percent_runtime', 'abort_percent_runtime', 'delay_duration_runtime', 'abort_http_status_runtime', 'max_active_faults_runtime', 'response_rate_limit_percent_runtime', 'abort_grpc_status_runtime', 'disable_downstream_cluster_stats', 'filter_metadata');
  f.done();
  return out;
}

// ---- rbac -------------------------------------------------------------------------------------

/** A StringMatcher as RBAC's and CORS's (exact, prefix, suffix or regex; the rest as a regex). */
function rbacString(m: Fields): Raw {
  if (m.bool('ignore_case') !== true) {
    const exact = m.str('exact');
    const prefix = m.str('prefix');
    const suffix = m.str('suffix');
    if (m.keys().length === 1) {
      if (exact !== undefined) return { exact };
      if (prefix !== undefined) return { prefix };
      if (suffix !== undefined) return { suffix };
    }
  }
  const s = stringMatcher(m);
  if (s.ignore_case) return { regex: `(?i)${escape(s.exact as string)}` };
  return s;
}

function escape(s: string): string {
  return s.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');
}

/** config.core.v3.CidrRange → "10.0.0.0/8". */
function cidr(c: Fields): string {
  const address = c.requiredStr('address_prefix');
  const len = c.wrapped('prefix_len') ?? (address.includes(':') ? 128 : 32);
  c.done();
  return `${address}/${len}`;
}

function permission(p: Fields): Raw {
  const rules = (key: string) => p.requiredMessage(key).list('rules').map(permission);
  const key = p.keys()[0];
  if (p.keys().length !== 1) p.fail(key ?? 'rule', 'a permission holds exactly one rule');
  let out: Raw;
  switch (key) {
    case 'any': out = { any: true }; p.bool('any'); break;
    case 'and_rules': out = { and_rules: rules(key) }; break;
    case 'or_rules': out = { or_rules: rules(key) }; break;
    case 'not_rule': out = { not_rule: permission(p.requiredMessage(key)) }; break;
    case 'header': out = { header: headerMatcher(p.requiredMessage(key)) }; break;
    case 'url_path': {
      const u = p.requiredMessage(key);
      out = { path: rbacString(u.requiredMessage('path')) };
      u.done();
      break;
    }
    case 'destination_port': out = { destination_port: p.num(key) }; break;
    case 'requested_server_name': out = { server_name: rbacString(p.requiredMessage(key)) }; break;
    default: return p.fail(key, `RBAC permission ${key} is not supported (any, and_rules, or_rules, not_rule, header, url_path, destination_port, requested_server_name are)`);
  }
  p.done();
  return out;
}

function principal(p: Fields): Raw {
  const ids = (key: string) => p.requiredMessage(key).list('ids').map(principal);
  const key = p.keys()[0];
  if (p.keys().length !== 1) p.fail(key ?? 'id', 'a principal holds exactly one identity');
  let out: Raw;
  switch (key) {
    case 'any': out = { any: true }; p.bool('any'); break;
    case 'and_ids': out = { and_ids: ids(key) }; break;
    case 'or_ids': out = { or_ids: ids(key) }; break;
    case 'not_id': out = { not_id: principal(p.requiredMessage(key)) }; break;
    case 'header': out = { header: headerMatcher(p.requiredMessage(key)) }; break;
    case 'authenticated': {
      const a = p.requiredMessage(key);
      const name = a.message('principal_name');
      a.done();
      // Envoy: no principal_name matches any authenticated connection.
      out = { authenticated: name ? rbacString(name) : { regex: '.+' } };
      break;
    }
    // Shuttle trusts no X-Forwarded-For hop (Envoy's default, xff_num_trusted_hops 0): the remote
    // address is the peer's, so remote_ip and direct_remote_ip are both the connection's source.
    case 'source_ip':
    case 'direct_remote_ip':
    case 'remote_ip': out = { source_ip: cidr(p.requiredMessage(key)) }; break;
    default: return p.fail(key, `RBAC principal ${key} is not supported (any, and_ids, or_ids, not_id, header, authenticated, source_ip, direct_remote_ip, remote_ip are)`);
  }
  p.done();
  return out;
}

/** config.rbac.v3.RBAC (rules) → Shuttle's rbac config, `shadow` when they are shadow rules. */
function rbacRules(r: Fields, shadow: boolean): Raw {
  const action = r.str('action') ?? 'ALLOW';
  if (action !== 'ALLOW' && action !== 'DENY') r.fail('action', `${action} is not supported (ALLOW and DENY are)`);
  const policies: Raw = {};
  const map = r.message('policies');
  for (const name of map?.keys() ?? []) {
    const p = map!.requiredMessage(name);
    if (p.has('condition') || p.has('checked_condition')) p.fail(p.has('condition') ? 'condition' : 'checked_condition', 'CEL conditions are not supported');
    const permissions = p.list('permissions').map(permission);
    const principals = p.list('principals').map(principal);
    if (permissions.length === 0) p.fail('permissions', 'a policy needs at least one permission');
    if (principals.length === 0) p.fail('principals', 'a policy needs at least one principal');
    p.done();
    policies[name] = { permissions, principals };
  }
  map?.done();
  r.skip('audit_logging_options');
  r.done();
  return { action, policies, shadow };
}

/** envoy.extensions.filters.http.rbac.v3.RBAC; no rules at all: Envoy enforces nothing (left out). */
function rbac(f: Fields): Raw | undefined {
  const rules = f.message('rules');
  const shadow = f.message('shadow_rules');
  if (f.has('matcher') || f.has('shadow_matcher')) f.fail(f.has('matcher') ? 'matcher' : 'shadow_matcher', 'RBAC matchers (the matcher API) are not supported; use rules');
  if (rules && shadow) f.fail('shadow_rules', 'rules and shadow_rules together are not supported (Shuttle runs one RBAC policy set, enforced or shadow)');
  f.skip('rules_stat_prefix', 'shadow_rules_stat_prefix', 'track_per_rule_stats');
  f.done();
  if (rules) return rbacRules(rules, false);
  if (shadow) return rbacRules(shadow, true);
  return undefined;
}

function rbacPerRoute(f: Fields): Raw {
  const inner = f.message('rbac');
  f.done();
  // An empty per-route RBAC turns the filter off on these routes (Envoy's way of exempting them).
  const mapped = inner ? rbac(inner) : undefined;
  return mapped ?? { disabled: true };
}

// ---- jwt_authn --------------------------------------------------------------------------------

/** config.core.v3.DataSource with the JWKS text (a file, or inline). */
function jwks(d: Fields): Raw {
  const filename = d.str('filename');
  const inline = d.str('inline_string');
  const bytes = d.str('inline_bytes'); // bytes as base64 (DECODE_OPTIONS)
  if (d.has('environment_variable')) d.fail('environment_variable', 'JWKS from an environment variable is not supported');
  d.skip('watched_directory');
  d.done();
  if (filename !== undefined) return { filename };
  if (inline !== undefined) return { inline_string: inline };
  if (bytes !== undefined) return { inline_string: Buffer.from(bytes, 'base64').toString('utf8') };
  throw new XdsFieldError(d.path, 'one of filename, inline_string, inline_bytes is required');
}

function jwtProvider(p: Fields): Raw {
  const out: Raw = {};
  const issuer = p.str('issuer');
  if (issuer) out.issuer = issuer;
  const audiences = p.strings('audiences');
  if (audiences.length > 0) out.audiences = audiences;
  const remote = p.message('remote_jwks');
  const local = p.message('local_jwks');
  if (remote) {
    const uri = remote.requiredMessage('http_uri');
    const r: Raw = { uri: uri.requiredStr('uri'), cluster: uri.requiredStr('cluster') };
    const timeout = uri.durationMs('timeout');
    if (timeout) r.timeout = ms(timeout);
    uri.done();
    const cache = remote.durationMs('cache_duration');
    if (cache) r.cache_duration = ms(cache);
    // Fetching ahead of the first request and retrying a failed fetch change when keys arrive, not which keys are valid.
    remote.skip('async_fetch', 'retry_policy');
    remote.done();
    out.remote_jwks = r;
  } else if (local) {
    out.local_jwks = jwks(local);
  } else {
    p.fail('remote_jwks', 'one of remote_jwks, local_jwks is required');
  }
  if (p.bool('forward')) out.forward = true;
  const fromHeaders = p.list('from_headers').map((h) => {
    const o = { name: h.requiredStr('name').toLowerCase(), value_prefix: h.str('value_prefix') ?? '' };
    h.done();
    return o;
  });
  if (fromHeaders.length > 0) out.from_headers = fromHeaders;
  const fromParams = p.strings('from_params');
  if (fromParams.length > 0) out.from_params = fromParams;
  if (p.strings('from_cookies').length > 0) p.fail('from_cookies', 'tokens from cookies are not supported');
  const payloadHeader = p.str('forward_payload_header');
  if (payloadHeader) out.forward_payload_header = payloadHeader.toLowerCase();
  if (p.bool('pad_forward_payload_header')) p.fail('pad_forward_payload_header', 'padded payload headers are not supported');
  const claims = p.list('claim_to_headers').map((c) => {
    const o = { header_name: c.requiredStr('header_name').toLowerCase(), claim_name: c.requiredStr('claim_name') };
    c.done();
    return o;
  });
  if (claims.length > 0) out.claim_to_headers = claims;
  const skew = p.num('clock_skew_seconds');
  if (skew !== undefined) out.clock_skew = ms(skew * 1000);
  if (p.has('max_lifetime')) p.fail('max_lifetime', 'a maximum token lifetime is not supported');
  if (p.has('subjects')) p.fail('subjects', 'subject matching is not supported');
  if (p.has('require_expiration') && p.bool('require_expiration')) p.fail('require_expiration', 'not supported');
  // Metadata is for other filters (Shuttle's rbac reads claims from the verified token itself); the cache is an optimisation.
  p.skip('payload_in_metadata', 'header_in_metadata', 'failed_status_in_metadata', 'normalize_payload_in_metadata', 'jwt_cache_config');
  p.done();
  return out;
}

/** A rule's JwtRequirement → { requires, allow_missing } (one provider; optionally no token). */
function jwtRequirement(r: Fields | undefined, providers: Set<string>): Raw {
  if (!r) return {};
  const name = r.str('provider_name');
  if (name !== undefined) {
    r.done();
    if (!providers.has(name)) r.fail('provider_name', `unknown provider "${name}"`);
    return { requires: name };
  }
  const any = r.message('requires_any');
  if (any) {
    // Istio's RequestAuthentication: one provider, or no token at all.
    const reqs = any.list('requirements');
    const named = reqs.map((q) => q.str('provider_name'));
    const missing = reqs.filter((q) => q.has('allow_missing'));
    const failed = reqs.find((q) => q.has('allow_missing_or_failed'));
    if (failed) failed.fail('allow_missing_or_failed', 'letting requests with an invalid token through is not supported (allow_missing is)');
    const provider = named.filter((n) => n !== undefined);
    if (provider.length !== 1 || missing.length + provider.length !== reqs.length || missing.length > 1) any.fail('requirements', 'requires_any is supported as one provider_name, optionally with allow_missing');
    for (const q of reqs) {
      q.skip('allow_missing');
      q.done();
    }
    any.done();
    r.done();
    if (!providers.has(provider[0]!)) any.fail('requirements', `unknown provider "${provider[0]}"`);
    return { requires: provider[0], ...(missing.length > 0 ? { allow_missing: true } : {}) };
  }
  const key = r.keys()[0] ?? 'requires';
  return r.fail(key, `requirement ${key} is not supported (provider_name and requires_any of one provider with allow_missing are)`);
}

function jwtAuthn(f: Fields): Raw {
  const providers: Raw = {};
  const map = f.message('providers');
  for (const name of map?.keys() ?? []) providers[name] = jwtProvider(map!.requiredMessage(name));
  map?.done();
  const names = new Set(Object.keys(providers));
  const rules = f.list('rules').map((rule) => {
    const m = rule.requiredMessage('match');
    const match: Raw = {};
    const prefix = m.str('prefix');
    const path = m.str('path');
    if (prefix !== undefined) match.prefix = prefix === '' ? '/' : prefix;
    else if (path !== undefined) match.path = path;
    else m.fail('prefix', 'JWT rules match by prefix or path');
    m.done();
    const out: Raw = { match, ...jwtRequirement(rule.message('requires'), names) };
    rule.skip('requirement_name');
    rule.done();
    return out;
  });
  if (f.has('filter_state_rules')) f.fail('filter_state_rules', 'not supported');
  if (f.has('requirement_map')) f.fail('requirement_map', 'per-route requirements are not supported');
  // Preflights carry no token: with every rule allowing a missing one, bypassing them changes nothing.
  if (f.bool('bypass_cors_preflight') && rules.some((r) => r.requires !== undefined && !('allow_missing' in r))) f.fail('bypass_cors_preflight', 'letting CORS preflights through a rule that requires a token is not supported');
  f.skip('stat_prefix', 'strip_failure_response');
  f.done();
  return { providers, rules: rules.length > 0 ? rules : [{ match: { prefix: '/' } }] };
}

// ---- cors -------------------------------------------------------------------------------------

/** The Cors filter's own config is empty: policies come per route (CorsPolicy); none allows nothing. */
function cors(f: Fields): Raw {
  f.done();
  return { allow_origin: [] };
}

function corsPolicy(p: Fields): Raw {
  const out: Raw = { allow_origin: p.list('allow_origin_string_match').map(rbacString) };
  const list = (key: string) => (p.str(key) ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  const methods = list('allow_methods');
  if (methods.length > 0) out.allow_methods = methods.map((m) => m.toUpperCase());
  const headers = list('allow_headers');
  if (headers.length > 0) out.allow_headers = headers;
  const expose = list('expose_headers');
  if (expose.length > 0) out.expose_headers = expose;
  const maxAge = p.str('max_age');
  if (maxAge !== undefined) {
    if (!/^\d{1,9}$/.test(maxAge)) p.fail('max_age', 'expected whole seconds');
    out.max_age = `${maxAge}s`;
  }
  if (p.wrappedBool('allow_credentials')) out.allow_credentials = true;
  const enabled = p.message('filter_enabled');
  if (enabled && fraction(enabled.message('default_value')) < 100) p.fail('filter_enabled', 'CORS enabled for part of the requests is not supported');
  enabled?.skip('runtime_key').done();
  if (p.has('shadow_enabled')) p.fail('shadow_enabled', 'shadow CORS is not supported');
  if (p.wrappedBool('allow_private_network_access')) p.fail('allow_private_network_access', 'not supported');
  p.skip('forward_not_matching_preflights');
  p.done();
  return out;
}

// ---- local_ratelimit --------------------------------------------------------------------------

/** type.v3.HttpStatus: its code is an enum (StatusCode), decoded by name. */
function httpStatus(s: Fields): number {
  const name = s.str('code') ?? s.fail('code', 'required');
  const code = xdsRoot().lookupEnum('envoy.type.v3.StatusCode').values[name] ?? Number(name);
  s.done();
  if (!Number.isInteger(code) || code < 400 || code > 599) s.fail('code', `${name}: expected a status from 400 to 599`);
  return code;
}

/** A RuntimeFractionalPercent's default, as a percentage (absent: `absent`). */
function runtimePercent(f: Fields | undefined, absent: number): number {
  if (!f) return absent;
  const p = fraction(f.message('default_value'));
  f.skip('runtime_key');
  f.done();
  return p;
}

/** envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit; enabled for no request: left out. */
function localRateLimit(f: Fields): Raw | undefined {
  const enabled = runtimePercent(f.message('filter_enabled'), 0);
  const enforced = runtimePercent(f.message('filter_enforced'), 0);
  const bucket = f.message('token_bucket');
  const status = f.message('status');
  const code = status ? httpStatus(status) : undefined;
  if (f.list('descriptors').length > 0) f.fail('descriptors', 'rate-limit descriptors are not supported (one bucket per listener or route)');
  if (f.list('response_headers_to_add').length > 0) f.fail('response_headers_to_add', 'not supported');
  if (f.list('request_headers_to_add_when_not_enforced').length > 0) f.fail('request_headers_to_add_when_not_enforced', 'not supported');
  if (f.bool('local_rate_limit_per_downstream_connection')) f.fail('local_rate_limit_per_downstream_connection', 'buckets per connection are not supported (Shuttle\'s are per process)');
  if ((f.num('stage') ?? 0) !== 0) f.fail('stage', 'rate-limit stages are not supported');
  const headers = f.str('enable_x_ratelimit_headers') ?? 'OFF';
  f.skip('stat_prefix', 'always_consume_default_token_bucket', 'vh_rate_limits', 'rate_limited_as_resource_exhausted');
  if (enabled === 0) {
    f.done();
    return undefined;
  }
  if (enabled < 100) f.fail('filter_enabled', 'a rate limit enabled for part of the requests is not supported');
  if (enforced < 100) f.fail('filter_enforced', 'a rate limit not enforced on every request (shadow) is not supported');
  if (!bucket) f.fail('token_bucket', 'a token_bucket is required where the limit is enabled');
  const maxTokens = bucket.num('max_tokens') ?? 0;
  const perFill = bucket.wrapped('tokens_per_fill');
  const interval = bucket.durationMs('fill_interval');
  bucket.done();
  if (!interval) return bucket.fail('fill_interval', 'required, above zero');
  f.done();
  return {
    token_bucket: { max_tokens: maxTokens, ...(perFill !== undefined ? { tokens_per_fill: perFill } : {}), fill_interval: ms(interval) },
    ...(code !== undefined ? { status: code } : {}),
    response_headers: headers === 'DRAFT_VERSION_03',
  };
}

// ---- header_mutation --------------------------------------------------------------------------

/** HeaderMutation's mutations (or a per-route one's): request and response adds and removes. */
function headerMutation(f: Fields, perRoute = false): Raw {
  const m = perRoute ? f : f.requiredMessage('mutations');
  const out: Raw = {};
  for (const [key, prefix] of [['request_mutations', 'request'], ['response_mutations', 'response']] as const) {
    const add: Fields[] = [];
    const remove: string[] = [];
    for (const mut of m.list(key)) {
      const append = mut.message('append');
      const rm = mut.str('remove');
      if (mut.has('remove_on_match')) mut.fail('remove_on_match', 'not supported');
      mut.done();
      if (append) add.push(append);
      else if (rm !== undefined) remove.push(rm.toLowerCase());
      else mut.fail('append', 'one of append, remove is required');
    }
    if (add.length > 0) out[`${prefix}_headers_to_add`] = headersToAdd(add);
    if (remove.length > 0) out[`${prefix}_headers_to_remove`] = remove;
  }
  for (const k of ['query_parameter_mutations', 'response_trailers_mutations', 'request_trailers_mutations']) if (m.list(k).length > 0) m.fail(k, 'not supported');
  if (!perRoute) {
    m.done();
    f.skip('most_specific_header_mutations_wins');
    f.done();
  } else m.done();
  return out;
}

// ---- compressor -------------------------------------------------------------------------------

const GZIP_LEVELS: Record<string, number> = { DEFAULT_COMPRESSION: 5, BEST_SPEED: 1, BEST_COMPRESSION: 9, COMPRESSION_LEVEL_1: 1, COMPRESSION_LEVEL_2: 2, COMPRESSION_LEVEL_3: 3, COMPRESSION_LEVEL_4: 4, COMPRESSION_LEVEL_5: 5, COMPRESSION_LEVEL_6: 6, COMPRESSION_LEVEL_7: 7, COMPRESSION_LEVEL_8: 8, COMPRESSION_LEVEL_9: 9 };

/** envoy.extensions.filters.http.compressor.v3.Compressor: one algorithm (Envoy runs one filter per library). */
function compressor(f: Fields): Raw {
  const out: Raw = {};
  const lib = f.requiredMessage('compressor_library');
  lib.skip('name');
  const typed = lib.requiredMessage('typed_config');
  lib.done();
  const type = typed.str('@type');
  if (type === GZIP_TYPE) {
    out.algorithms = ['gzip'];
    const level = typed.str('compression_level');
    if (level !== undefined) out.level = GZIP_LEVELS[level] ?? typed.fail('compression_level', `${level} is not supported`);
    // Memory, window and strategy tune zlib; the bytes are still gzip any client reads.
    typed.skip('memory_level', 'window_bits', 'compression_strategy', 'chunk_size');
  } else if (type === BROTLI_TYPE) {
    out.algorithms = ['br'];
    typed.skip('quality', 'encoder_mode', 'window_bits', 'input_block_bits', 'chunk_size', 'disable_literal_context_modeling');
  } else if (type === ZSTD_TYPE) {
    out.algorithms = ['zstd'];
    typed.skip('compression_level', 'enable_checksum', 'strategy', 'dictionary', 'chunk_size');
  } else {
    typed.fail('@type', `compressor library ${type} is not supported (gzip, brotli, zstd are)`);
  }
  typed.done();
  const response = f.message('response_direction_config');
  const c = response?.message('common_config');
  if (c) {
    const enabled = c.message('enabled');
    if (enabled?.wrappedBool('default_value') === false) c.fail('enabled', 'a disabled compressor is not supported');
    enabled?.skip('runtime_key').done();
    const min = c.wrapped('min_content_length');
    if (min !== undefined) out.min_content_length = min;
    const types = c.strings('content_type');
    if (types.length > 0) out.content_types = types;
    c.done();
  }
  if (response?.bool('disable_on_etag_header')) out.disable_on_etag_header = true;
  response?.skip('remove_accept_encoding_header');
  response?.done();
  const request = f.message('request_direction_config');
  if (request) request.fail('common_config', 'compressing request bodies is not supported');
  f.skip('choose_first');
  f.done();
  return out;
}
