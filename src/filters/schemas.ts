/**
 * The config schema of every built-in filter, by name, and where each may run: what the config
 * loader validates `http_filters`, `rpc_filters` and `per_filter_config` against. (Only schemas
 * here: the implementations, in registry.ts, are loaded by the workers.)
 */
import type { z } from 'zod';
import { compressorConfig } from './compressor/config.ts';
import { corsConfig } from './cors/config.ts';
import { faultConfig } from './fault/config.ts';
import { headerMutationConfig } from './header_mutation/config.ts';
import { jwtAuthnConfig } from './jwt_authn/config.ts';
import { localRateLimitConfig } from './local_ratelimit/config.ts';
import { rbacConfig } from './rbac/config.ts';
import { requestIdConfig } from './request_id/config.ts';

export interface FilterSchema {
  readonly schema: z.ZodType;
  readonly http: boolean;
  readonly rpc: boolean;
}

export const FILTER_SCHEMAS: Readonly<Record<string, FilterSchema>> = {
  fault: { schema: faultConfig, http: true, rpc: true },
  local_ratelimit: { schema: localRateLimitConfig, http: true, rpc: true },
  rbac: { schema: rbacConfig, http: true, rpc: true },
  jwt_authn: { schema: jwtAuthnConfig, http: true, rpc: false },
  header_mutation: { schema: headerMutationConfig, http: true, rpc: false },
  request_id: { schema: requestIdConfig, http: true, rpc: false },
  cors: { schema: corsConfig, http: true, rpc: false },
  compressor: { schema: compressorConfig, http: true, rpc: false },
};
