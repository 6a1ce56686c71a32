/**
 * What the proxy needs to know of gRPC (grpc/grpc doc/PROTOCOL-HTTP2.md): which requests are gRPC,
 * the `grpc-timeout` deadline, statuses in Trailers-Only responses and in trailers, and the
 * mapping from an upstream's HTTP status when it sent no grpc-status (doc/http-grpc-status-mapping.md).
 */
import { GrpcStatus } from '../../errors.ts';
import type { HeaderMap } from '../../stream/header-map.ts';

/** A request is gRPC when its content-type is application/grpc (or +proto, +json, …). */
export function isGrpc(h: HeaderMap): boolean {
  const type = h.get('content-type');
  return type !== undefined && type.startsWith('application/grpc') && (type.length === 16 || type.charCodeAt(16) === 43 /* + */ || type.charCodeAt(16) === 59 /* ; */);
}

const UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

/** `grpc-timeout` (1–8 digits and a unit H M S m u n) in milliseconds; undefined when absent or malformed. */
export function parseGrpcTimeout(value: string | undefined): number | undefined {
  if (value === undefined || value.length < 2 || value.length > 9) return undefined;
  const unit = UNIT_MS[value[value.length - 1]];
  if (unit === undefined) return undefined;
  let n = 0;
  for (let i = 0; i < value.length - 1; i++) {
    const d = value.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return undefined;
    n = n * 10 + d;
  }
  return n * unit;
}

/** Milliseconds as a grpc-timeout value (at most 8 digits: coarser units for long ones). */
export function formatGrpcTimeout(ms: number): string {
  const m = Math.max(1, Math.ceil(ms));
  if (m < 1e8) return `${m}m`;
  const s = Math.ceil(m / 1000);
  if (s < 1e8) return `${s}S`;
  return `${Math.min(99_999_999, Math.ceil(s / 60))}M`;
}

/** The grpc-status of a head or trailers, or -1 when it has none (or not a number). */
export function grpcStatusOf(h: HeaderMap): number {
  const v = h.get('grpc-status');
  if (v === undefined || v.length === 0 || v.length > 2) return -1;
  const n = Number(v);
  return Number.isInteger(n) && n >= 0 ? n : -1;
}

/** gRPC status for an upstream HTTP status without grpc-status. */
export function grpcStatusFromHttp(status: number): number {
  switch (status) {
    case 400: return GrpcStatus.INTERNAL;
    case 401: return GrpcStatus.UNAUTHENTICATED;
    case 403: return GrpcStatus.PERMISSION_DENIED;
    case 404: return GrpcStatus.UNIMPLEMENTED;
    case 429: case 502: case 503: case 504: return GrpcStatus.UNAVAILABLE;
    default: return GrpcStatus.UNKNOWN;
  }
}

/** grpc-message is percent-encoded: bytes outside 0x20–0x7e, and "%" itself. */
export function encodeGrpcMessage(message: string): string {
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** retry_on names for gRPC statuses (Envoy's x-envoy-retry-grpc-on). */
export const GRPC_RETRY_ON: Readonly<Record<string, number>> = {
  cancelled: GrpcStatus.CANCELLED,
  'deadline-exceeded': GrpcStatus.DEADLINE_EXCEEDED,
  'resource-exhausted': GrpcStatus.RESOURCE_EXHAUSTED,
  unavailable: GrpcStatus.UNAVAILABLE,
  internal: GrpcStatus.INTERNAL,
};
