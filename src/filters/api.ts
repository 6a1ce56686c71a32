/**
 * Stream filters (Envoy's and MOSN's shape): policy that runs on every request of a listener,
 * whatever its protocol, between the codec and the router.
 *
 *   codec ─▶ ProxyStream.decodeHeaders ─ route ─▶ decoder filters 1 … n ─▶ router (upstream)
 *   codec ◀─ encoder filters n … 1 ◀──────────────────────────────────────── response / local reply
 *
 * A filter is a factory and a per-stream instance. The factory validates its config once (zod),
 * when the config is loaded; `build` then makes what every stream of a generation shares (frozen
 * config, compiled matchers, JWKS caches, handles on shared memory); `create` makes the instance
 * of one stream. Each hook returns 'continue' (the next filter runs) or 'stop' (iteration halts
 * until the filter calls `continueDecoding()` / `continueEncoding()`; data arriving meanwhile is
 * buffered, bounded). A filter may answer instead of the upstream with `sendLocalReply`, which
 * speaks the stream's protocol: an HTTP status, a gRPC Trailers-Only reply, or (RPC filters) the
 * protocol's error response.
 *
 * Per route, `per_filter_config: { <filter>: { disabled: true } | <config> }` turns a filter off or
 * replaces its config on that route (Envoy's typed_per_filter_config).
 */
import type { z } from 'zod';
import type { ErrorCode } from '../errors.ts';
import type { Logger } from '../log/logger.ts';
import type { TlsInfo } from '../net/tls-server.ts';
import type { RpcCall } from '../router/rpc-router.ts';
import type { HeaderMap } from '../stream/header-map.ts';
import type { ResponseFlag } from './response-flags.ts';
import type { PolicyTable } from './shared/policy-table.ts';

export type FilterStatus = 'continue' | 'stop';

/** What a filter can see of the request and its connection (read at decodeHeaders and after). */
export interface StreamInfo {
  readonly listener: string;
  /** The route's name, when the request matched one. */
  readonly route: string | undefined;
  /** 'HTTP/1.0' | 'HTTP/1.1' | 'HTTP/2', or 'bolt' | 'dubbo'. */
  readonly protocol: string;
  readonly grpc: boolean;
  readonly clientIp: string;
  readonly localPort: number;
  readonly tls: TlsInfo | undefined;
  /** Values filters leave for later filters and the access log (JWT claims, the request id). */
  readonly metadata: Map<string, unknown>;
}

/** A reply made by a filter instead of the upstream's. */
export interface FilterLocalReply {
  status: number;
  body?: string;
  /** The gRPC status for a gRPC request (default: mapped from `status`). */
  grpcStatus?: number;
  headers?: readonly (readonly [string, string])[];
  /** Why, for the access log and metrics (Envoy's response flags: FI, RL, UAEX, RBAC…). */
  flag?: ResponseFlag;
  /** The error code (x-shuttle-error, the access log's `error`). */
  code?: ErrorCode;
}

export interface HttpFilterCallbacks {
  readonly info: StreamInfo;
  /** The request headers (valid from decodeHeaders on; mutable while decoding). */
  readonly requestHeaders: HeaderMap;
  /** Resumes the request after a hook returned 'stop'. */
  continueDecoding(): void;
  /** Resumes the response after a hook returned 'stop'. */
  continueEncoding(): void;
  /** Answers now, in the stream's protocol; the filters after this one do not see the request. */
  sendLocalReply(reply: FilterLocalReply): void;
  /**
   * Sends response data produced by this filter (a compressor's output) to the filters after it
   * and then the client: for filters that answered 'consume'.
   */
  injectEncodedData(data: Buffer, endStream: boolean): void;
  /** Headers changed in a way that may change the route: it is looked up again. */
  clearRouteCache(): void;
  setResponseFlag(flag: ResponseFlag): void;
  readonly logger: Logger;
}

/**
 * A data hook may also answer 'consume': the filter keeps the data (it will send its own with
 * injectEncodedData) and iteration goes on with nothing.
 */
export type DataStatus = FilterStatus | 'consume';

/** One stream's instance of a filter. Every hook is optional: a missing one continues. */
export interface HttpFilter {
  decodeHeaders?(headers: HeaderMap, endStream: boolean): FilterStatus;
  decodeData?(data: Buffer, endStream: boolean): FilterStatus;
  decodeTrailers?(trailers: HeaderMap): FilterStatus;
  encodeHeaders?(headers: HeaderMap, endStream: boolean): FilterStatus;
  encodeData?(data: Buffer, endStream: boolean): DataStatus;
  encodeTrailers?(trailers: HeaderMap): FilterStatus;
  /** The stream ended (completed, reset or answered): cancel timers and pending work. */
  onDestroy?(): void;
}

/** An RPC call as RPC filters see it (Bolt or Dubbo). */
export interface RpcCallInfo {
  readonly call: RpcCall;
  readonly info: StreamInfo;
}

export interface RpcFilterCallbacks {
  /** Resumes the call after onRequest returned 'stop'. */
  continueCall(): void;
  /** Answers the call with the protocol's error response (`status` mapped per protocol). */
  sendLocalReply(reply: RpcLocalReply): void;
  readonly logger: Logger;
}

/** An RPC filter's answer: mapped to Bolt's and Dubbo's own statuses. */
export interface RpcLocalReply {
  kind: 'fault' | 'rate_limited' | 'denied' | 'overflow';
  message: string;
  flag: ResponseFlag;
}

export interface RpcFilter {
  onRequest(call: RpcCallInfo): FilterStatus;
  onDestroy?(): void;
}

/** Decisions filters count per listener (shuttle_listener_<name>_total). */
export type FilterCounter = 'rbac_allowed' | 'rbac_denied' | 'rbac_shadow_allowed' | 'rbac_shadow_denied' | 'jwt_authn_allowed' | 'jwt_authn_denied';

/** What a filter's build step gets: shared memory for per-process state, counters, the logger. */
export interface FilterBuildContext {
  readonly policy: PolicyTable;
  readonly logger: Logger;
  /** A stable identity of this filter instance across reloads (listener, scope, config). */
  readonly key: string;
  count(counter: FilterCounter): void;
  /** GET `path` (with Host `authority`) from a host of `cluster`: the JWKS of jwt_authn. */
  readonly fetch?: (cluster: string, path: string, timeoutMs: number, authority: string) => Promise<{ status: number; body: Buffer }>;
}

/** What one generation of a filter config shares across streams. */
export interface BuiltHttpFilter {
  create(callbacks: HttpFilterCallbacks): HttpFilter;
  /** The generation is retired (reload): stop refresh timers. */
  close?(): void;
}

export interface BuiltRpcFilter {
  create(callbacks: RpcFilterCallbacks): RpcFilter;
  close?(): void;
}

export interface FilterFactory<Config = unknown> {
  /** Envoy's short name: fault, local_ratelimit, jwt_authn, rbac, header_mutation, cors, compressor, request_id. */
  readonly name: string;
  /** Validates the config once, at load (its output is what `build` receives). */
  readonly schema: z.ZodType<Config>;
  buildHttp?(config: Config, ctx: FilterBuildContext): BuiltHttpFilter;
  buildRpc?(config: Config, ctx: FilterBuildContext): BuiltRpcFilter;
}
