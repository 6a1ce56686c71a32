/**
 * jwt_authn: requests on paths that require a provider must carry a JWT it signed, whose issuer,
 * audience and validity (with clock skew) check out. Missing or invalid tokens get 401 with
 * WWW-Authenticate (RFC 6750), a token for another audience 403; gRPC calls get UNAUTHENTICATED /
 * PERMISSION_DENIED. A verified token's payload is left for rbac (jwt_claim) and may be forwarded
 * as headers. Verification is asynchronous: the request waits (its filter stops), others go on.
 */
import { jwtVerify, errors as joseErrors, type JWTPayload } from 'jose';
import { GrpcStatus } from '../../errors.ts';
import { queryParam } from '../../router/router.ts';
import type { HeaderMap } from '../../stream/header-map.ts';
import type { BuiltHttpFilter, FilterBuildContext, FilterFactory, FilterStatus, HttpFilter, HttpFilterCallbacks } from '../api.ts';
import { jwtAuthnConfig, type JwtAuthnConfig, type JwtProviderConfig } from './config.ts';
import { localKeys, remoteKeys, type KeySource } from './jwks.ts';

interface Provider {
  name: string;
  cfg: JwtProviderConfig;
  keys: KeySource;
}

interface Rule {
  matches(path: string): boolean;
  provider: Provider | undefined;
  allowMissing: boolean;
}

interface Refusal {
  status: 401 | 403;
  message: string;
  error?: 'invalid_token';
}

function refusalOf(err: unknown): Refusal {
  if (err instanceof joseErrors.JWTExpired) return { status: 401, message: 'Jwt is expired', error: 'invalid_token' };
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'aud') return { status: 403, message: 'Audiences in Jwt are not allowed' };
    if (err.claim === 'iss') return { status: 401, message: 'Jwt issuer is not configured', error: 'invalid_token' };
    if (err.claim === 'nbf') return { status: 401, message: 'Jwt not yet valid', error: 'invalid_token' };
    return { status: 401, message: `Jwt claim ${err.claim} is invalid`, error: 'invalid_token' };
  }
  if (err instanceof joseErrors.JWKSNoMatchingKey || err instanceof joseErrors.JWSSignatureVerificationFailed) return { status: 401, message: 'Jwt verification fails', error: 'invalid_token' };
  return { status: 401, message: 'Jwt is not in the form of Header.Payload.Signature', error: 'invalid_token' };
}

class JwtAuthn implements HttpFilter {
  private readonly rules: readonly Rule[];
  private readonly ctx: FilterBuildContext;
  private readonly cb: HttpFilterCallbacks;
  private done = false;

  constructor(rules: readonly Rule[], ctx: FilterBuildContext, cb: HttpFilterCallbacks) {
    this.rules = rules;
    this.ctx = ctx;
    this.cb = cb;
  }

  decodeHeaders(h: HeaderMap): FilterStatus {
    const q = h.path.indexOf('?');
    const path = q < 0 ? h.path : h.path.slice(0, q);
    const rule = this.rules.find((r) => r.matches(path));
    const provider = rule?.provider;
    if (provider === undefined) return 'continue';
    const found = this.token(h, provider.cfg, q < 0 ? '' : h.path.slice(q + 1));
    if (found === undefined) {
      if (rule!.allowMissing) return 'continue';
      return this.refuse(h, { status: 401, message: 'Jwt is missing' });
    }
    this.verify(h, provider, found).then(
      (payload) => {
        if (this.done) return;
        this.accept(h, provider, found, payload);
        this.cb.continueDecoding();
      },
      (err) => {
        if (this.done) return;
        if (err instanceof joseErrors.JWKSNoMatchingKey) provider.keys.missingKey();
        this.refuse(h, err instanceof RefusalError ? err.refusal : refusalOf(err));
      },
    );
    return 'stop';
  }

  private async verify(_h: HeaderMap, provider: Provider, found: { token: string }): Promise<JWTPayload> {
    const keys = await provider.keys.keys();
    if (keys === undefined) throw new RefusalError({ status: 401, message: 'Jwks remote fetch is failed', error: 'invalid_token' });
    const { payload } = await jwtVerify(found.token, keys, {
      issuer: provider.cfg.issuer,
      audience: provider.cfg.audiences,
      clockTolerance: Math.round(provider.cfg.clock_skew / 1000),
    });
    return payload;
  }

  /** The token and where it was (to remove it), or undefined. */
  private token(h: HeaderMap, cfg: JwtProviderConfig, query: string): { token: string; header?: string } | undefined {
    for (const from of cfg.from_headers) {
      const v = h.get(from.name.toLowerCase());
      if (v === undefined) continue;
      if (from.value_prefix === '') return { token: v.trim(), header: from.name.toLowerCase() };
      // The scheme is case-insensitive (RFC 6750: "Bearer").
      if (v.length > from.value_prefix.length && v.slice(0, from.value_prefix.length).toLowerCase() === from.value_prefix.toLowerCase()) {
        return { token: v.slice(from.value_prefix.length).trim(), header: from.name.toLowerCase() };
      }
    }
    for (const p of cfg.from_params) {
      const v = queryParam(query, p);
      if (v !== undefined && v !== '') return { token: v };
    }
    return undefined;
  }

  private accept(h: HeaderMap, provider: Provider, found: { header?: string }, payload: JWTPayload): void {
    this.ctx.count('jwt_authn_allowed');
    this.cb.info.metadata.set('jwt_payload', payload);
    this.cb.info.metadata.set('jwt_provider', provider.name);
    const cfg = provider.cfg;
    if (!cfg.forward && found.header !== undefined) h.remove(found.header);
    if (cfg.forward_payload_header !== undefined) h.set(cfg.forward_payload_header, Buffer.from(JSON.stringify(payload)).toString('base64url'));
    for (const c of cfg.claim_to_headers) {
      const v = (payload as Record<string, unknown>)[c.claim_name];
      if (v === undefined || v === null) continue;
      const text = typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : Array.isArray(v) ? v.join(',') : undefined;
      if (text !== undefined && !/[\r\n\0]/.test(text)) h.set(c.header_name, text);
    }
  }

  private refuse(h: HeaderMap, f: Refusal): FilterStatus {
    this.ctx.count('jwt_authn_denied');
    const realm = `http://${h.authority}${h.path.split('?', 1)[0]}`.replace(/"/g, '');
    const challenge = f.status === 401 ? `Bearer realm="${realm}"${f.error ? `, error="${f.error}"` : ''}` : undefined;
    this.cb.sendLocalReply({
      status: f.status,
      body: f.message,
      grpcStatus: f.status === 401 ? GrpcStatus.UNAUTHENTICATED : GrpcStatus.PERMISSION_DENIED,
      headers: challenge ? [['www-authenticate', challenge]] : [],
      flag: 'UAEX',
      code: 'SHUTTLE_E_UNAUTHENTICATED',
    });
    return 'stop';
  }

  onDestroy(): void {
    this.done = true;
  }
}

/** A verification failure decided before jose ran. */
class RefusalError extends Error {
  readonly refusal: Refusal;
  constructor(refusal: Refusal) {
    super(refusal.message);
    this.refusal = refusal;
  }
}

export const jwtAuthnFilter: FilterFactory<JwtAuthnConfig> = {
  name: 'jwt_authn',
  schema: jwtAuthnConfig,
  buildHttp(cfg, ctx): BuiltHttpFilter {
    const providers = new Map<string, Provider>();
    for (const [name, p] of Object.entries(cfg.providers)) {
      providers.set(name, { name, cfg: p, keys: p.local_jwks ? localKeys(p.local_jwks) : remoteKeys(p.remote_jwks!, ctx) });
    }
    const rules: Rule[] = cfg.rules.map((r) => {
      const m = r.match;
      const matches = m.path !== undefined ? (p: string) => p === m.path : (p: string) => p.startsWith(m.prefix ?? '/');
      return { matches, provider: r.requires !== undefined ? providers.get(r.requires) : undefined, allowMissing: r.allow_missing };
    });
    return {
      create: (cb) => new JwtAuthn(rules, ctx, cb),
      close: () => {
        for (const p of providers.values()) p.keys.close();
      },
    };
  },
};
