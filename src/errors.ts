/**
 * One error root and one code registry for the whole data plane (after undici's UND_ERR_* codes
 * and Pingora's errors typed by source and retry decision). Each code says where the failure came
 * from, whether another attempt may succeed, and how it is answered in each protocol: the HTTP
 * status of a local reply and the gRPC status of a Trailers-Only reply. Codecs throw subclasses
 * (HttpParseError, BoltProtocolError, …) so that a caller can tell "the peer sent garbage" from
 * "we have a bug" with one instanceof.
 *
 * The codes are documented in docs/admin.md (error codes).
 */
export type ErrorSource = 'upstream' | 'downstream' | 'internal';

/** gRPC status codes (grpc/grpc doc/statuscodes.md). */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

interface ErrorInfo {
  readonly message: string;
  readonly source: ErrorSource;
  /** Status of the local reply an HTTP client gets (0: the connection is cut instead). */
  readonly http: number;
  /** grpc-status of the Trailers-Only reply a gRPC client gets. */
  readonly grpc: number;
  /** Another attempt (another host, a fresh connection) may succeed. */
  readonly retryable?: boolean;
}

const G = GrpcStatus;

export const ERRORS = {
  SHUTTLE_E_CONFIG: { message: 'the config is invalid', source: 'internal', http: 500, grpc: G.INTERNAL },
  SHUTTLE_E_INTERNAL: { message: 'an internal error (a bug) ended this request', source: 'internal', http: 500, grpc: G.INTERNAL },
  SHUTTLE_E_NO_HEALTHY_HOST: { message: 'the cluster has no host to send to', source: 'internal', http: 503, grpc: G.UNAVAILABLE },
  SHUTTLE_E_UPSTREAM_CONNECT_TIMEOUT: { message: 'connecting to the upstream host took longer than connect_timeout', source: 'upstream', http: 503, grpc: G.UNAVAILABLE, retryable: true },
  SHUTTLE_E_UPSTREAM_CONNECT_FAILED: { message: 'connecting to the upstream host failed (refused, unreachable, reset)', source: 'upstream', http: 503, grpc: G.UNAVAILABLE, retryable: true },
  SHUTTLE_E_UPSTREAM_RESET: { message: 'the upstream connection was reset after it was established', source: 'upstream', http: 502, grpc: G.UNAVAILABLE },
  SHUTTLE_E_UPSTREAM_REFUSED_STREAM: { message: 'the upstream refused the stream before processing it', source: 'upstream', http: 503, grpc: G.UNAVAILABLE, retryable: true },
  SHUTTLE_E_DOWNSTREAM_RESET: { message: 'the downstream connection was reset', source: 'downstream', http: 0, grpc: G.CANCELLED },
  SHUTTLE_E_IDLE_TIMEOUT: { message: 'no byte moved in either direction for idle_timeout', source: 'internal', http: 0, grpc: G.UNAVAILABLE },
  SHUTTLE_E_DRAIN_DEADLINE: { message: 'the connection was still open when the drain deadline passed', source: 'internal', http: 0, grpc: G.UNAVAILABLE },
  SHUTTLE_E_NO_WORKER: { message: 'no worker thread was ready to take the connection', source: 'internal', http: 0, grpc: G.UNAVAILABLE },
  SHUTTLE_E_RING_RECORD_TOO_LARGE: { message: 'a record larger than a shared ring was pushed', source: 'internal', http: 500, grpc: G.INTERNAL },
  SHUTTLE_E_UPSTREAM_OVERFLOW: { message: 'the connection pool was full and the request could not wait', source: 'internal', http: 503, grpc: G.RESOURCE_EXHAUSTED },
  SHUTTLE_E_FAULT_INJECTED: { message: 'the fault filter aborted the request (fault injection)', source: 'internal', http: 503, grpc: G.UNAVAILABLE },
  SHUTTLE_E_RATE_LIMITED: { message: 'local_ratelimit had no token for the request', source: 'downstream', http: 429, grpc: G.RESOURCE_EXHAUSTED },
  SHUTTLE_E_UNAUTHENTICATED: { message: 'jwt_authn found no valid token', source: 'downstream', http: 401, grpc: G.UNAUTHENTICATED },
  SHUTTLE_E_RBAC_DENIED: { message: 'rbac denied the request by policy', source: 'downstream', http: 403, grpc: G.PERMISSION_DENIED },
  SHUTTLE_E_CIRCUIT_OPEN: { message: "a circuit breaker of the cluster was full (max_requests, max_pending_requests, max_connections or max_retries)", source: 'internal', http: 503, grpc: G.UNAVAILABLE },
  SHUTTLE_E_UPSTREAM_TIMEOUT: { message: 'the upstream did not answer within the route timeout', source: 'upstream', http: 504, grpc: G.DEADLINE_EXCEEDED },
  SHUTTLE_E_STREAM_IDLE_TIMEOUT: { message: 'no byte of a request or its response moved for stream_idle_timeout', source: 'internal', http: 504, grpc: G.DEADLINE_EXCEEDED },
  SHUTTLE_E_UPSTREAM_PROTOCOL: { message: 'the upstream sent a malformed response', source: 'upstream', http: 502, grpc: G.INTERNAL },
  SHUTTLE_E_NO_ROUTE: { message: 'no route matched the request', source: 'downstream', http: 404, grpc: G.UNIMPLEMENTED },
  SHUTTLE_E_NO_CLUSTER: { message: 'the route names a cluster that does not exist', source: 'internal', http: 503, grpc: G.UNAVAILABLE },
  SHUTTLE_E_HTTP_BAD_REQUEST: { message: 'malformed or smuggling-shaped request', source: 'downstream', http: 400, grpc: G.INTERNAL },
  SHUTTLE_E_HTTP_METHOD_NOT_ALLOWED: { message: 'the method is not served here', source: 'downstream', http: 405, grpc: G.UNIMPLEMENTED },
  SHUTTLE_E_HTTP_HEADERS_TOO_LARGE: { message: 'header section or field count over the limit', source: 'downstream', http: 431, grpc: G.RESOURCE_EXHAUSTED },
  SHUTTLE_E_HTTP_URI_TOO_LONG: { message: 'the request line alone is over the header size limit', source: 'downstream', http: 414, grpc: G.RESOURCE_EXHAUSTED },
  SHUTTLE_E_HTTP_BODY_TOO_LARGE: { message: 'request body over the limit', source: 'downstream', http: 413, grpc: G.RESOURCE_EXHAUSTED },
  SHUTTLE_E_HTTP_VERSION: { message: 'HTTP version other than 1.0 and 1.1', source: 'downstream', http: 505, grpc: G.INTERNAL },
  SHUTTLE_E_HTTP_HEADERS_TIMEOUT: { message: 'the request head did not arrive within request_headers_timeout', source: 'downstream', http: 408, grpc: G.DEADLINE_EXCEEDED },
  SHUTTLE_E_HTTP_BAD_RESPONSE: { message: 'malformed upstream response', source: 'upstream', http: 502, grpc: G.INTERNAL },
  SHUTTLE_E_BOLT_PROTOCOL: { message: 'malformed Bolt frame', source: 'downstream', http: 0, grpc: G.INTERNAL },
  SHUTTLE_E_DUBBO_PROTOCOL: { message: 'malformed Dubbo frame or body', source: 'downstream', http: 0, grpc: G.INTERNAL },
  SHUTTLE_E_NO_TRANSLATION: { message: 'the request cannot be translated to the protocol of the upstream it was routed to', source: 'internal', http: 502, grpc: G.UNIMPLEMENTED },
} as const satisfies Record<string, ErrorInfo>;

export type ErrorCode = keyof typeof ERRORS;

export class ShuttleError extends Error {
  readonly code: ErrorCode;
  readonly source: ErrorSource;
  readonly retryable: boolean;
  /** `source` defaults to the code's; give it where one code has several origins. */
  constructor(code: ErrorCode, source: ErrorSource = ERRORS[code].source, message: string = ERRORS[code].message, options?: { cause?: unknown; retryable?: boolean }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ShuttleError';
    this.code = code;
    this.source = source;
    this.retryable = options?.retryable ?? (ERRORS[code] as ErrorInfo).retryable ?? false;
  }

  /** The status of an HTTP local reply for this error (0: cut the connection instead). */
  get httpStatus(): number {
    return ERRORS[this.code].http;
  }

  get grpcStatus(): number {
    return ERRORS[this.code].grpc;
  }
}
