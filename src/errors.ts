/**
 * Errors typed by where they come from and whether another attempt may succeed (after Pingora),
 * with stable codes (after undici's UND_ERR_*). Codes are documented in the README.
 */
export type ErrorSource = 'upstream' | 'downstream' | 'internal';

export const ERROR_CODES = {
  SHUTTLE_E_CONFIG: 'the config is invalid',
  SHUTTLE_E_NO_HEALTHY_HOST: 'the cluster has no host to send to',
  SHUTTLE_E_UPSTREAM_CONNECT_TIMEOUT: 'connecting to the upstream host took longer than connect_timeout',
  SHUTTLE_E_UPSTREAM_CONNECT_FAILED: 'connecting to the upstream host failed (refused, unreachable, reset)',
  SHUTTLE_E_UPSTREAM_RESET: 'the upstream connection was reset after it was established',
  SHUTTLE_E_DOWNSTREAM_RESET: 'the downstream connection was reset',
  SHUTTLE_E_IDLE_TIMEOUT: 'no byte moved in either direction for idle_timeout',
  SHUTTLE_E_DRAIN_DEADLINE: 'the connection was still open when the drain deadline passed',
  SHUTTLE_E_NO_WORKER: 'no worker thread was ready to take the connection',
  SHUTTLE_E_UPSTREAM_OVERFLOW: 'the connection pool was full and the request could not wait',
  SHUTTLE_E_UPSTREAM_TIMEOUT: 'the upstream did not answer within the route timeout',
  SHUTTLE_E_STREAM_IDLE_TIMEOUT: 'no byte of a request or its response moved for stream_idle_timeout',
  SHUTTLE_E_UPSTREAM_PROTOCOL: 'the upstream sent a malformed response',
  SHUTTLE_E_NO_ROUTE: 'no route matched the request',
  SHUTTLE_E_NO_CLUSTER: 'the route names a cluster that does not exist',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class ShuttleError extends Error {
  readonly code: ErrorCode;
  readonly source: ErrorSource;
  readonly retryable: boolean;
  constructor(code: ErrorCode, source: ErrorSource, message: string = ERROR_CODES[code], options?: { cause?: unknown; retryable?: boolean }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ShuttleError';
    this.code = code;
    this.source = source;
    this.retryable = options?.retryable ?? false;
  }
}
