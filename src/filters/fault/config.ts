/** fault: abort and delay a share of requests (Envoy's HTTP fault filter, also for RPC calls). */
import { z } from 'zod';
import { duration, valueMatcher } from '../../config/route-schema.ts';

/** A share of requests, 0–100 (decimals allowed: 0.5). */
export const percentage = z.number().min(0).max(100);

export const faultConfig = z.object({
  abort: z.object({
    /** The HTTP status answered (for gRPC requests: grpc_status, else mapped from it). */
    http_status: z.number().int().min(200).max(599).default(503),
    grpc_status: z.number().int().min(1).max(16).optional(),
    percentage: percentage.default(100),
  }).strict().optional(),
  delay: z.object({
    fixed_delay: duration.refine((ms) => ms > 0, { message: 'must be greater than zero' }),
    percentage: percentage.default(100),
  }).strict().optional(),
  /** Only requests (or calls) whose headers all match are faulted. */
  headers: z.array(valueMatcher).default([]),
  /**
   * Only requests from these downstream services (the `x-envoy-downstream-service-cluster`
   * header, as Envoy's downstream_nodes).
   */
  downstream_nodes: z.array(z.string().min(1)).optional(),
  /**
   * Honour x-envoy-fault-abort-request, x-envoy-fault-abort-grpc-request,
   * x-envoy-fault-delay-request (ms) and their *-percentage headers (off: a client must not be
   * able to fault its own requests unless the operator allows it).
   */
  header_controlled: z.boolean().default(false),
  /** Faults active at once per worker (delays held open), beyond which requests pass. */
  max_active_faults: z.number().int().min(1).optional(),
}).strict();

export type FaultConfig = z.output<typeof faultConfig>;
