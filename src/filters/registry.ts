/** Every built-in filter by name (Envoy's names). A new filter: its folder, then one line here and in schemas.ts. */
import type { FilterFactory } from './api.ts';
import { compressorFilter } from './compressor/compressor.ts';
import { corsFilter } from './cors/cors.ts';
import { faultFilter } from './fault/fault.ts';
import { headerMutationFilter } from './header_mutation/header-mutation.ts';
import { jwtAuthnFilter } from './jwt_authn/jwt-authn.ts';
import { localRateLimitFilter } from './local_ratelimit/local-ratelimit.ts';
import { rbacFilter } from './rbac/rbac.ts';
import { requestIdFilter } from './request_id/request-id.ts';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- each factory checks its own config (schemas.ts)
export const FILTERS: Readonly<Record<string, FilterFactory<any>>> = Object.fromEntries(
  [faultFilter, localRateLimitFilter, rbacFilter, jwtAuthnFilter, headerMutationFilter, requestIdFilter, corsFilter, compressorFilter].map((f) => [f.name, f as FilterFactory<any>]),
);
