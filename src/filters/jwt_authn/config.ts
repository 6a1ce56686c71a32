/**
 * jwt_authn: verifies JSON Web Tokens (Envoy's JWT authentication filter), with jose. Providers
 * name an issuer, audiences and keys (a JWKS file, inline, or fetched from a cluster and cached);
 * rules say which requests need which provider.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { duration, headerName } from '../../config/route-schema.ts';

const provider = z.object({
  issuer: z.string().min(1).optional(),
  /** The token's `aud` must hold one of these (when given). */
  audiences: z.array(z.string().min(1)).optional(),
  /** Keys: exactly one of local_jwks, remote_jwks. */
  local_jwks: z.object({ filename: z.string().min(1).optional(), inline_string: z.string().min(1).optional() }).strict()
    .refine((j) => (j.filename === undefined) !== (j.inline_string === undefined), { message: 'give exactly one of filename, inline_string' })
    .superRefine((j, ctx) => {
      // Checked at load, so a bad key file is a config error, not a worker failing to apply it.
      let text = j.inline_string;
      const where = j.filename !== undefined ? 'filename' : 'inline_string';
      try {
        text ??= readFileSync(j.filename!, 'utf8');
        const parsed = JSON.parse(text) as { keys?: unknown };
        if (!Array.isArray(parsed?.keys)) throw new Error('not a JWKS (no "keys" array)');
      } catch (err) {
        ctx.addIssue({ code: 'custom', path: [where], message: `${j.filename ?? 'the inline JWKS'}: ${(err as Error).message}` });
      }
    }).optional(),
  remote_jwks: z.object({
    /** Where the JWKS is: its path and Host; fetched from a host of `cluster`. */
    uri: z.string().regex(/^https?:\/\/[^\s/]+\/\S*$/, 'expected an http(s) URL such as https://issuer.example.com/.well-known/jwks.json'),
    cluster: z.string().min(1),
    timeout: duration.default(5_000),
    /** How long fetched keys are used before they are fetched again. */
    cache_duration: duration.default(600_000),
  }).strict().optional(),
  /** Where the token is looked for (default: Authorization: Bearer …). */
  from_headers: z.array(z.object({ name: headerName, value_prefix: z.string().default('') }).strict()).default([{ name: 'authorization', value_prefix: 'Bearer ' }]),
  from_params: z.array(z.string().min(1)).default([]),
  /** Keep the token in the request sent upstream (default: removed). */
  forward: z.boolean().default(false),
  /** Send the verified payload upstream, base64url JSON, in this header. */
  forward_payload_header: headerName.optional(),
  /** Claims sent upstream as headers. */
  claim_to_headers: z.array(z.object({ header_name: headerName, claim_name: z.string().min(1) }).strict()).default([]),
  clock_skew: duration.default(60_000),
}).strict().refine((p) => (p.local_jwks === undefined) !== (p.remote_jwks === undefined), { message: 'give exactly one of local_jwks, remote_jwks' });

export const jwtAuthnConfig = z.object({
  providers: z.record(z.string().min(1), provider),
  /** The first rule whose match fits decides; no rule: no token needed. */
  rules: z.array(z.object({
    match: z.object({ prefix: z.string().startsWith('/').optional(), path: z.string().startsWith('/').optional() }).strict().default({ prefix: '/' }),
    /** A provider's name; absent: no token needed on these paths. */
    requires: z.string().min(1).optional(),
    /** A request without a token passes (one with a bad token is still refused). */
    allow_missing: z.boolean().default(false),
  }).strict()).min(1),
}).strict().superRefine((c, ctx) => {
  c.rules.forEach((r, i) => {
    if (r.requires !== undefined && !(r.requires in c.providers)) ctx.addIssue({ code: 'custom', path: ['rules', i, 'requires'], message: `unknown provider "${r.requires}"` });
  });
});

export type JwtAuthnConfig = z.output<typeof jwtAuthnConfig>;
export type JwtProviderConfig = JwtAuthnConfig['providers'][string];
