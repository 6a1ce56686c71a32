/**
 * What the RPC proxy needs from a multiplexed protocol (MOSN's codec interface for RPC): frames,
 * ids, the call's routing fields, and the protocol's own replies for heartbeats and failures.
 * Bolt and Dubbo each implement it; the connection and call logic is shared.
 */
import type { RpcCall } from '../../router/rpc-router.ts';
import type { MuxCodec } from '../../stream/mux-pool.ts';

/** Failures the proxy answers itself, mapped by each protocol to its status codes. */
export type RpcFailure = 'no_route' | 'no_host' | 'timeout' | 'upstream_lost'
  /** Answered by a filter: a fault injected, a rate limit, an RBAC denial; a circuit breaker full. */
  | 'fault' | 'rate_limited' | 'denied' | 'overflow';

export type FrameKind = 'request' | 'oneway' | 'heartbeat' | 'ignore';

export interface RpcProtocol<F> extends MuxCodec<F> {
  readonly name: 'bolt' | 'dubbo';
  /** What a frame from a client is. */
  kind(frame: F): FrameKind;
  /** The call's routing fields; throws the protocol's error for an unreadable call. */
  call(frame: F): RpcCall;
  /** The caller's own timeout carried in the frame, in ms (0: none). */
  timeoutOf(frame: F, call: RpcCall): number;
  /** The id the client used, to answer under it (the frame's own id gets remapped upstream). */
  clientId(frame: F): unknown;
  /** The reply to a heartbeat. */
  heartbeatAck(frame: F): Buffer;
  /** An error reply, under the client's id. */
  errorReply(frame: F, clientId: unknown, failure: RpcFailure, message: string): Buffer;
  /** A response from upstream, rewritten to the client's id. */
  restoreId(response: F, clientId: unknown): Buffer;
  /** The status of an upstream response, for the access log. */
  statusOf(response: F): number;
  /** The status of a successful response (Bolt SUCCESS 0, Dubbo OK 20). */
  readonly okStatus: number;
  isProtocolError(err: unknown): err is Error & { code: string };
}
