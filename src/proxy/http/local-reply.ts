/**
 * Responses the proxy makes itself (no route, no host, timeouts, direct responses, redirects), in
 * the stream's own protocol (Envoy's sendLocalReply): an HTTP status with a short text body and
 * `x-shuttle-error`; for a gRPC request, a Trailers-Only response (HTTP 200, `grpc-status`,
 * `grpc-message`), which is what a gRPC client can read.
 */
import type { StreamEncoder } from '../../layers.ts';
import { HeaderMap } from '../../stream/header-map.ts';
import { encodeGrpcMessage, grpcStatusFromHttp } from './grpc.ts';

export interface LocalReply {
  status: number;
  body: string;
  /** An error code for x-shuttle-error (errors only). */
  code?: string;
  headers?: readonly (readonly [string, string])[];
  /** The gRPC status for a gRPC request (default: mapped from the HTTP status). */
  grpcStatus?: number;
}

/** Sends the reply; `headOnly`: the request was HEAD (no body). Returns the status sent. */
export function sendLocalReply(encoder: StreamEncoder, grpc: boolean, headOnly: boolean, reply: LocalReply): number {
  if (grpc) {
    const g = reply.grpcStatus ?? grpcStatusFromHttp(reply.status);
    const h = HeaderMap.response(200, ['content-type', 'application/grpc', 'grpc-status', String(g), 'grpc-message', encodeGrpcMessage(reply.body.trim())]);
    if (reply.code) h.fields.push('x-shuttle-error', reply.code);
    encoder.encodeHeaders(h, true);
    return 200;
  }
  const body = Buffer.from(reply.body, 'utf8');
  const h = HeaderMap.response(reply.status, ['content-type', 'text/plain; charset=utf-8']);
  h.contentLength = body.length;
  if (reply.code) h.fields.push('x-shuttle-error', reply.code);
  for (const [k, v] of reply.headers ?? []) h.fields.push(k, v);
  if (headOnly || body.length === 0) encoder.encodeHeaders(h, true);
  else {
    encoder.encodeHeaders(h, false);
    encoder.encodeData(body, true);
  }
  return reply.status;
}
