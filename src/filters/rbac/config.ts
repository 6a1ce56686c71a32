/**
 * rbac: allow or deny by who calls (principals: mTLS identity, JWT claims, source IP, headers) and
 * what they call (permissions: paths, methods, headers, RPC services and methods, ports, SNI), as
 * Envoy's RBAC filter. A policy matches when any of its permissions and any of its principals
 * match. `shadow`: nothing is refused, decisions are only counted and logged.
 */
import { z } from 'zod';
import { regex, valueMatcher } from '../../config/route-schema.ts';

export const stringMatcher = z.object({ exact: z.string().optional(), prefix: z.string().optional(), suffix: z.string().optional(), regex: regex.optional() }).strict()
  .refine((m) => [m.exact, m.prefix, m.suffix, m.regex].filter((v) => v !== undefined).length === 1, { message: 'give exactly one of exact, prefix, suffix, regex' });
export type StringMatcherConfig = z.output<typeof stringMatcher>;

const cidr = z.string().regex(/^[0-9A-Fa-f:.]+\/\d{1,3}$/, 'expected an address range such as 10.0.0.0/8 or fd00::/8');

export type PermissionConfig =
  | { any: true }
  | { path: StringMatcherConfig }
  | { methods: string[] }
  | { header: z.output<typeof valueMatcher> }
  | { rpc_service: StringMatcherConfig }
  | { rpc_method: StringMatcherConfig }
  | { destination_port: number }
  | { server_name: StringMatcherConfig }
  | { and_rules: PermissionConfig[] }
  | { or_rules: PermissionConfig[] }
  | { not_rule: PermissionConfig };

export type PrincipalConfig =
  | { any: true }
  | { authenticated: StringMatcherConfig }
  | { source_ip: string }
  | { header: z.output<typeof valueMatcher> }
  | { jwt_claim: { name: string; value: StringMatcherConfig } }
  | { and_ids: PrincipalConfig[] }
  | { or_ids: PrincipalConfig[] }
  | { not_id: PrincipalConfig };

const permission: z.ZodType<PermissionConfig> = z.lazy(() => z.union([
  z.object({ any: z.literal(true) }).strict(),
  z.object({ path: stringMatcher }).strict(),
  z.object({ methods: z.array(z.string().regex(/^[A-Z]+$/, 'expected an upper-case method')).min(1) }).strict(),
  z.object({ header: valueMatcher }).strict(),
  z.object({ rpc_service: stringMatcher }).strict(),
  z.object({ rpc_method: stringMatcher }).strict(),
  z.object({ destination_port: z.number().int().min(1).max(65535) }).strict(),
  z.object({ server_name: stringMatcher }).strict(),
  z.object({ and_rules: z.array(permission).min(1) }).strict(),
  z.object({ or_rules: z.array(permission).min(1) }).strict(),
  z.object({ not_rule: permission }).strict(),
])) as z.ZodType<PermissionConfig>;

const principal: z.ZodType<PrincipalConfig> = z.lazy(() => z.union([
  z.object({ any: z.literal(true) }).strict(),
  /** The client certificate's identity (SPIFFE id, DNS name or CN), verified by mTLS. */
  z.object({ authenticated: stringMatcher }).strict(),
  z.object({ source_ip: cidr }).strict(),
  z.object({ header: valueMatcher }).strict(),
  /** A claim of the request's verified JWT (jwt_authn must run before rbac). */
  z.object({ jwt_claim: z.object({ name: z.string().min(1), value: stringMatcher }).strict() }).strict(),
  z.object({ and_ids: z.array(principal).min(1) }).strict(),
  z.object({ or_ids: z.array(principal).min(1) }).strict(),
  z.object({ not_id: principal }).strict(),
])) as z.ZodType<PrincipalConfig>;

export const rbacConfig = z.object({
  action: z.enum(['ALLOW', 'DENY']).default('ALLOW'),
  policies: z.record(z.string().min(1), z.object({
    permissions: z.array(permission).min(1),
    principals: z.array(principal).min(1),
  }).strict()),
  /** Only count and log what would be refused. */
  shadow: z.boolean().default(false),
}).strict();

export type RbacConfig = z.output<typeof rbacConfig>;
