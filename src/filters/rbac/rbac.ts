/**
 * rbac: decides by policy who may call what (Envoy's RBAC filter): ALLOW lets through requests
 * some policy matches, DENY refuses them. Principals see the verified mTLS identity, the source
 * address, headers and verified JWT claims; permissions see the path, method, headers, RPC service
 * and method, the listener's port and the SNI. Refusals are 403 (gRPC PERMISSION_DENIED, an RPC
 * error for Bolt/Dubbo). In shadow mode nothing is refused: decisions are counted and logged.
 */
import net from 'node:net';
import { GrpcStatus } from '../../errors.ts';
import { valueMatcher } from '../../router/router.ts';
import type { HeaderMap } from '../../stream/header-map.ts';
import type { BuiltHttpFilter, BuiltRpcFilter, FilterBuildContext, FilterFactory, FilterStatus, HttpFilter, HttpFilterCallbacks, RpcCallInfo, RpcFilter, RpcFilterCallbacks, StreamInfo } from '../api.ts';
import { stringMatcher } from '../shared/string-matcher.ts';
import { rbacConfig, type PermissionConfig, type PrincipalConfig, type RbacConfig } from './config.ts';

/** What a decision reads of a request or call. */
export interface RbacSubject {
  readonly info: StreamInfo;
  readonly path: string | undefined;
  readonly method: string | undefined;
  readonly rpcService: string | undefined;
  readonly rpcMethod: string | undefined;
  header(name: string): string | undefined;
}

type Check = (s: RbacSubject) => boolean;

/** A claim of the verified JWT (jwt_authn leaves the payload in the stream's metadata), "a.b" nested. */
function claim(info: StreamInfo, name: string): unknown {
  let v: unknown = info.metadata.get('jwt_payload');
  for (const part of name.split('.')) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return v;
}

function compilePermission(p: PermissionConfig): Check {
  if ('any' in p) return () => true;
  if ('path' in p) {
    const m = stringMatcher(p.path);
    return (s) => s.path !== undefined && m(s.path.split('?', 1)[0]);
  }
  if ('methods' in p) {
    const set = new Set(p.methods);
    return (s) => s.method !== undefined && set.has(s.method);
  }
  if ('header' in p) return valueMatcher(p.header, (s: RbacSubject, name) => s.header(name));
  if ('rpc_service' in p) {
    const m = stringMatcher(p.rpc_service);
    return (s) => s.rpcService !== undefined && m(s.rpcService);
  }
  if ('rpc_method' in p) {
    const m = stringMatcher(p.rpc_method);
    return (s) => s.rpcMethod !== undefined && m(s.rpcMethod);
  }
  if ('destination_port' in p) return (s) => s.info.localPort === p.destination_port;
  if ('server_name' in p) {
    const m = stringMatcher(p.server_name);
    return (s) => s.info.tls?.sni !== undefined && m(s.info.tls.sni);
  }
  if ('and_rules' in p) {
    const all = p.and_rules.map(compilePermission);
    return (s) => all.every((c) => c(s));
  }
  if ('or_rules' in p) {
    const any = p.or_rules.map(compilePermission);
    return (s) => any.some((c) => c(s));
  }
  const not = compilePermission(p.not_rule);
  return (s) => !not(s);
}

function compilePrincipal(p: PrincipalConfig): Check {
  if ('any' in p) return () => true;
  if ('authenticated' in p) {
    const m = stringMatcher(p.authenticated);
    // Only a verified certificate's identity counts (tls-server refuses unverified ones).
    return (s) => {
      const peer = s.info.tls?.peer;
      return peer !== undefined && peer.verified && m(peer.identity);
    };
  }
  if ('source_ip' in p) {
    const [addr, bits] = p.source_ip.split('/');
    const family = net.isIPv6(addr) ? 'ipv6' : 'ipv4';
    const list = new net.BlockList();
    list.addSubnet(addr, Number(bits), family);
    return (s) => {
      const ip = s.info.clientIp;
      return net.isIP(ip) !== 0 && list.check(ip, net.isIPv6(ip) ? 'ipv6' : 'ipv4');
    };
  }
  if ('header' in p) return valueMatcher(p.header, (s: RbacSubject, name) => s.header(name));
  if ('jwt_claim' in p) {
    const m = stringMatcher(p.jwt_claim.value);
    const name = p.jwt_claim.name;
    return (s) => {
      const v = claim(s.info, name);
      if (typeof v === 'string') return m(v);
      if (typeof v === 'number' || typeof v === 'boolean') return m(String(v));
      return Array.isArray(v) && v.some((x) => typeof x === 'string' && m(x));
    };
  }
  if ('and_ids' in p) {
    const all = p.and_ids.map(compilePrincipal);
    return (s) => all.every((c) => c(s));
  }
  if ('or_ids' in p) {
    const any = p.or_ids.map(compilePrincipal);
    return (s) => any.some((c) => c(s));
  }
  const not = compilePrincipal(p.not_id);
  return (s) => !not(s);
}

class RbacEngine {
  private readonly cfg: RbacConfig;
  private readonly policies: { name: string; permission: Check; principal: Check }[];
  private readonly ctx: FilterBuildContext;

  constructor(cfg: RbacConfig, ctx: FilterBuildContext) {
    this.cfg = cfg;
    this.ctx = ctx;
    this.policies = Object.entries(cfg.policies).map(([name, p]) => {
      const perms = p.permissions.map(compilePermission);
      const princ = p.principals.map(compilePrincipal);
      return { name, permission: (s: RbacSubject) => perms.some((c) => c(s)), principal: (s: RbacSubject) => princ.some((c) => c(s)) };
    });
  }

  /** True when the request may go on (always, in shadow mode). */
  allows(s: RbacSubject, logger: FilterBuildContext['logger']): boolean {
    const matched = this.policies.find((p) => p.permission(s) && p.principal(s));
    const allowed = this.cfg.action === 'ALLOW' ? matched !== undefined : matched === undefined;
    if (this.cfg.shadow) {
      this.ctx.count(allowed ? 'rbac_shadow_allowed' : 'rbac_shadow_denied');
      if (!allowed) logger.info({ listener: s.info.listener, route: s.info.route ?? null, policy: matched?.name ?? null, peer: s.info.tls?.peer?.identity ?? null, client: s.info.clientIp }, 'rbac shadow: would deny');
      return true;
    }
    this.ctx.count(allowed ? 'rbac_allowed' : 'rbac_denied');
    if (!allowed) logger.debug({ listener: s.info.listener, route: s.info.route ?? null, policy: matched?.name ?? null, client: s.info.clientIp }, 'rbac: denied');
    return allowed;
  }
}

class HttpRbac implements HttpFilter {
  private readonly engine: RbacEngine;
  private readonly cb: HttpFilterCallbacks;

  constructor(engine: RbacEngine, cb: HttpFilterCallbacks) {
    this.engine = engine;
    this.cb = cb;
  }

  decodeHeaders(h: HeaderMap): FilterStatus {
    const subject: RbacSubject = { info: this.cb.info, path: h.path, method: h.method, rpcService: undefined, rpcMethod: undefined, header: (n) => h.get(n) };
    if (this.engine.allows(subject, this.cb.logger)) return 'continue';
    this.cb.sendLocalReply({ status: 403, body: 'RBAC: access denied', grpcStatus: GrpcStatus.PERMISSION_DENIED, flag: 'RBAC', code: 'SHUTTLE_E_RBAC_DENIED' });
    return 'stop';
  }
}

class RpcRbac implements RpcFilter {
  private readonly engine: RbacEngine;
  private readonly cb: RpcFilterCallbacks;

  constructor(engine: RbacEngine, cb: RpcFilterCallbacks) {
    this.engine = engine;
    this.cb = cb;
  }

  onRequest({ call, info }: RpcCallInfo): FilterStatus {
    const subject: RbacSubject = { info, path: undefined, method: undefined, rpcService: call.service, rpcMethod: call.method, header: (n) => call.header(n) };
    if (this.engine.allows(subject, this.cb.logger)) return 'continue';
    this.cb.sendLocalReply({ kind: 'denied', message: 'RBAC: access denied', flag: 'RBAC' });
    return 'stop';
  }
}

export const rbacFilter: FilterFactory<RbacConfig> = {
  name: 'rbac',
  schema: rbacConfig,
  buildHttp(cfg, ctx): BuiltHttpFilter {
    const engine = new RbacEngine(cfg, ctx);
    return { create: (cb) => new HttpRbac(engine, cb) };
  },
  buildRpc(cfg, ctx): BuiltRpcFilter {
    const engine = new RbacEngine(cfg, ctx);
    return { create: (cb) => new RpcRbac(engine, cb) };
  },
};
