/** cors: answers preflights and adds the CORS response headers (Envoy's CORS policy). */
import { z } from 'zod';
import { duration, regex } from '../../config/route-schema.ts';

const origin = z.object({ exact: z.string().optional(), prefix: z.string().optional(), suffix: z.string().optional(), regex: regex.optional() }).strict()
  .refine((m) => [m.exact, m.prefix, m.suffix, m.regex].filter((v) => v !== undefined).length === 1, { message: 'give exactly one of exact, prefix, suffix, regex' });

export const corsConfig = z.object({
  /** Origins allowed. Empty: none (the filter does nothing unless a route's per_filter_config gives a policy, as Envoy's Cors filter with per-route CorsPolicy). */
  allow_origin: z.array(origin).default([]),
  allow_methods: z.array(z.string().regex(/^[A-Z]+$/, 'expected an upper-case method')).default(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']),
  allow_headers: z.array(z.string().min(1)).default([]),
  expose_headers: z.array(z.string().min(1)).default([]),
  max_age: duration.optional(),
  allow_credentials: z.boolean().default(false),
}).strict();

export type CorsConfig = z.output<typeof corsConfig>;
