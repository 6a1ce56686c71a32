/**
 * local_ratelimit: a token bucket per listener (or route, or descriptor value) in the policy
 * table's shared memory, so every worker thread takes from the same bucket and the limit holds
 * per process. Refused requests get 429 (gRPC: RESOURCE_EXHAUSTED; Bolt/Dubbo: their busy
 * status) and the x-ratelimit-* headers.
 */
import { GrpcStatus } from '../../errors.ts';
import type { HeaderMap } from '../../stream/header-map.ts';
import type { BuiltHttpFilter, BuiltRpcFilter, FilterBuildContext, FilterFactory, FilterStatus, HttpFilter, HttpFilterCallbacks, RpcCallInfo, RpcFilter, RpcFilterCallbacks, StreamInfo } from '../api.ts';
import type { PolicyTable, TokenBucketSpec } from '../shared/policy-table.ts';
import { localRateLimitConfig, type LocalRateLimitConfig } from './config.ts';

class RateLimiter {
  readonly cfg: LocalRateLimitConfig;
  private readonly table: PolicyTable;
  private readonly key: string;
  private readonly spec: TokenBucketSpec;
  /** Seconds until a full refill, for x-ratelimit-reset. */
  readonly resetSeconds: string;
  readonly limit: string;

  constructor(cfg: LocalRateLimitConfig, ctx: FilterBuildContext) {
    this.cfg = cfg;
    this.table = ctx.policy;
    this.key = ctx.key;
    const b = cfg.token_bucket;
    const perFill = b.tokens_per_fill ?? b.max_tokens;
    this.spec = { maxTokens: b.max_tokens, perMs: perFill / b.fill_interval };
    this.resetSeconds = String(Math.max(1, Math.ceil(b.fill_interval / 1000)));
    this.limit = String(b.max_tokens);
  }

  /** The descriptor value a request or call is counted under. */
  descriptor(info: StreamInfo, header: (name: string) => string | undefined, service: string | undefined): string {
    const d = this.cfg.descriptor;
    switch (d.type) {
      case 'none': return '';
      case 'client_ip': return info.clientIp;
      case 'header': return header(d.name) ?? '';
      case 'peer_identity': return info.tls?.peer?.identity ?? '';
      case 'rpc_service': return service ?? '';
    }
  }

  /** Tokens left after taking one, or -1 when refused. */
  take(descriptor: string): number {
    return this.table.take(descriptor === '' ? this.key : `${this.key}|${descriptor}`, this.spec);
  }
}

class HttpRateLimit implements HttpFilter {
  private readonly limiter: RateLimiter;
  private readonly cb: HttpFilterCallbacks;
  private remaining = -2;

  constructor(limiter: RateLimiter, cb: HttpFilterCallbacks) {
    this.limiter = limiter;
    this.cb = cb;
  }

  decodeHeaders(h: HeaderMap): FilterStatus {
    const left = this.limiter.take(this.limiter.descriptor(this.cb.info, (n) => h.get(n), undefined));
    this.remaining = left;
    if (left >= 0) return 'continue';
    const headers: [string, string][] = this.limiter.cfg.response_headers ? this.headers(0) : [];
    this.cb.sendLocalReply({ status: this.limiter.cfg.status, body: 'local_rate_limited', grpcStatus: GrpcStatus.RESOURCE_EXHAUSTED, flag: 'RL', headers, code: 'SHUTTLE_E_RATE_LIMITED' });
    return 'stop';
  }

  encodeHeaders(h: HeaderMap): FilterStatus {
    // (A refusal carries them already, from sendLocalReply.)
    if (this.remaining >= 0 && this.limiter.cfg.response_headers) for (const [k, v] of this.headers(this.remaining)) h.fields.push(k, v);
    return 'continue';
  }

  private headers(remaining: number): [string, string][] {
    return [['x-ratelimit-limit', this.limiter.limit], ['x-ratelimit-remaining', String(remaining)], ['x-ratelimit-reset', this.limiter.resetSeconds]];
  }
}

class RpcRateLimit implements RpcFilter {
  private readonly limiter: RateLimiter;
  private readonly cb: RpcFilterCallbacks;

  constructor(limiter: RateLimiter, cb: RpcFilterCallbacks) {
    this.limiter = limiter;
    this.cb = cb;
  }

  onRequest({ call, info }: RpcCallInfo): FilterStatus {
    if (this.limiter.take(this.limiter.descriptor(info, (n) => call.header(n), call.service)) >= 0) return 'continue';
    this.cb.sendLocalReply({ kind: 'rate_limited', message: 'local_rate_limited', flag: 'RL' });
    return 'stop';
  }
}

export const localRateLimitFilter: FilterFactory<LocalRateLimitConfig> = {
  name: 'local_ratelimit',
  schema: localRateLimitConfig,
  buildHttp(cfg, ctx): BuiltHttpFilter {
    const limiter = new RateLimiter(cfg, ctx);
    return { create: (cb) => new HttpRateLimit(limiter, cb) };
  },
  buildRpc(cfg, ctx): BuiltRpcFilter {
    const limiter = new RateLimiter(cfg, ctx);
    return { create: (cb) => new RpcRateLimit(limiter, cb) };
  },
};
