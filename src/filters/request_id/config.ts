/**
 * request_id: every request carries an id (`x-request-id`, made when absent, kept when present
 * unless the client is not trusted to set it), logged in the access line with the trace id of its
 * W3C `traceparent` or B3 headers, which pass on untouched.
 */
import { z } from 'zod';
import { headerName } from '../../config/route-schema.ts';

export const requestIdConfig = z.object({
  header: headerName.default('x-request-id'),
  /** Keep an id the client sent (false: always replace it, as at an edge facing the internet). */
  preserve_external: z.boolean().default(true),
  /** Return the id in the response too. */
  always_set_response: z.boolean().default(false),
}).strict();

export type RequestIdConfig = z.output<typeof requestIdConfig>;
