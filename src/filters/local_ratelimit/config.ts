/**
 * local_ratelimit: token buckets shared by every worker thread (so a limit is per process,
 * whatever --threads says), per listener, per route (a per-route config), or per descriptor value
 * (client IP, a header, the mTLS identity, the RPC service).
 */
import { z } from 'zod';
import { duration, headerName } from '../../config/route-schema.ts';

export const localRateLimitConfig = z.object({
  token_bucket: z.object({
    /** The bucket's size: the burst allowed (it starts full). */
    max_tokens: z.number().int().min(1),
    /** Tokens added every fill_interval (added continuously, at that rate). */
    tokens_per_fill: z.number().int().min(1).optional(),
    fill_interval: duration.refine((ms) => ms > 0, { message: 'must be greater than zero' }),
  }).strict(),
  /** Whose bucket a request takes from: one for all (none), or one per value of this. */
  descriptor: z.discriminatedUnion('type', [
    z.object({ type: z.literal('none') }).strict(),
    z.object({ type: z.literal('client_ip') }).strict(),
    z.object({ type: z.literal('header'), name: headerName }).strict(),
    z.object({ type: z.literal('peer_identity') }).strict(),
    z.object({ type: z.literal('rpc_service') }).strict(),
  ]).default({ type: 'none' }),
  /** HTTP status of the refusal (gRPC: RESOURCE_EXHAUSTED; Bolt/Dubbo: their busy status). */
  status: z.number().int().min(400).max(599).default(429),
  /** Send x-ratelimit-limit, x-ratelimit-remaining and x-ratelimit-reset (draft RFC headers). */
  response_headers: z.boolean().default(true),
}).strict();

export type LocalRateLimitConfig = z.output<typeof localRateLimitConfig>;
