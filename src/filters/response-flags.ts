/**
 * Why a request ended the way it did, in Envoy's response-flag vocabulary: the access log's
 * `response_flags` and the per-listener counter `shuttle_listener_downstream_rq_response_flag_total`
 * say which filter (or which failure) answered. Short codes, as operators grep for them.
 */
export const RESPONSE_FLAGS = {
  /** fault: an abort was injected. */
  FI: 'fault injected',
  /** fault: a delay was injected. */
  DI: 'delay injected',
  /** local_ratelimit: no token. */
  RL: 'rate limited',
  /** jwt_authn: no valid token. */
  UAEX: 'unauthorised',
  /** rbac: denied by policy. */
  RBAC: 'denied by rbac',
  /** A circuit breaker was full (requests, pending, connections, retries). */
  UO: 'upstream overflow',
  /** No healthy host in the cluster. */
  UH: 'no healthy upstream',
  /** The upstream connection failed. */
  UF: 'upstream connection failure',
  /** The route or upstream timeout passed. */
  UT: 'upstream request timeout',
  /** No route matched. */
  NR: 'no route',
  /** The upstream reset the stream. */
  UR: 'upstream remote reset',
  /** The downstream went away before the response ended. */
  DC: 'downstream connection termination',
} as const;

export type ResponseFlag = keyof typeof RESPONSE_FLAGS;
export const RESPONSE_FLAG_NAMES = Object.keys(RESPONSE_FLAGS) as ResponseFlag[];
export const RESPONSE_FLAG_INDEX: Record<ResponseFlag, number> = Object.fromEntries(RESPONSE_FLAG_NAMES.map((f, i) => [f, i])) as Record<ResponseFlag, number>;

/** "DI,FI" for the access log, from a bit set of flags. */
export function responseFlagsText(bits: number): string {
  const out: string[] = [];
  for (let i = 0; i < RESPONSE_FLAG_NAMES.length; i++) if (bits & (1 << i)) out.push(RESPONSE_FLAG_NAMES[i]);
  return out.join(',');
}
