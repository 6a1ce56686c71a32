/**
 * cors: answers CORS preflights itself (they never reach the upstream) and adds the CORS headers
 * to responses for allowed origins. A request from an origin not allowed passes without them, so
 * the browser blocks it (the server is not asked to refuse anything).
 */
import type { HeaderMap } from '../../stream/header-map.ts';
import type { BuiltHttpFilter, FilterFactory, FilterStatus, HttpFilter, HttpFilterCallbacks } from '../api.ts';
import { stringMatcher } from '../shared/string-matcher.ts';
import { corsConfig, type CorsConfig } from './config.ts';

interface CorsPolicy {
  allowed(origin: string): boolean;
  methods: string;
  headers: string;
  expose: string;
  maxAge: string | undefined;
  credentials: boolean;
}

class Cors implements HttpFilter {
  private readonly p: CorsPolicy;
  private readonly cb: HttpFilterCallbacks;
  /** The request's allowed Origin, echoed in the response. */
  private origin: string | undefined;

  constructor(p: CorsPolicy, cb: HttpFilterCallbacks) {
    this.p = p;
    this.cb = cb;
  }

  decodeHeaders(h: HeaderMap): FilterStatus {
    const origin = h.get('origin');
    if (origin === undefined || !this.p.allowed(origin)) return 'continue';
    this.origin = origin;
    if (h.method !== 'OPTIONS' || h.get('access-control-request-method') === undefined) return 'continue';
    const headers: [string, string][] = [['access-control-allow-origin', origin], ['access-control-allow-methods', this.p.methods], ['vary', 'Origin']];
    if (this.p.headers) headers.push(['access-control-allow-headers', this.p.headers]);
    if (this.p.maxAge !== undefined) headers.push(['access-control-max-age', this.p.maxAge]);
    if (this.p.credentials) headers.push(['access-control-allow-credentials', 'true']);
    this.origin = undefined; // (the reply carries its headers already)
    this.cb.sendLocalReply({ status: 200, body: '', headers });
    return 'stop';
  }

  encodeHeaders(h: HeaderMap): FilterStatus {
    if (this.origin === undefined) return 'continue';
    h.set('access-control-allow-origin', this.origin);
    if (this.p.credentials) h.set('access-control-allow-credentials', 'true');
    if (this.p.expose) h.set('access-control-expose-headers', this.p.expose);
    const vary = h.get('vary');
    if (vary === undefined) h.set('vary', 'Origin');
    else if (!/(^|,)\s*(origin|\*)\s*(,|$)/i.test(vary)) h.set('vary', `${vary}, Origin`);
    return 'continue';
  }
}

export const corsFilter: FilterFactory<CorsConfig> = {
  name: 'cors',
  schema: corsConfig,
  buildHttp(cfg): BuiltHttpFilter {
    const matchers = cfg.allow_origin.map(stringMatcher);
    const p: CorsPolicy = {
      allowed: (o) => matchers.some((m) => m(o)),
      methods: cfg.allow_methods.join(', '),
      headers: cfg.allow_headers.join(', '),
      expose: cfg.expose_headers.join(', '),
      maxAge: cfg.max_age !== undefined ? String(Math.floor(cfg.max_age / 1000)) : undefined,
      credentials: cfg.allow_credentials,
    };
    return { create: (cb) => new Cors(p, cb) };
  },
};
