/**
 * header_mutation: add and remove request and response headers. Values may use Envoy-style
 * variables: %DOWNSTREAM_REMOTE_ADDRESS%, %PEER_IDENTITY%, %REQUEST_ID%, %ROUTE%, %LISTENER%,
 * %PROTOCOL%, %REQ(header-name)%.
 */
import { z } from 'zod';
import { headerName, headerToAdd } from '../../config/route-schema.ts';
import { unknownVariables } from './template.ts';

const addition = z.array(headerToAdd).default([]).superRefine((list, ctx) => {
  list.forEach((a, i) => {
    for (const name of unknownVariables(a.value)) ctx.addIssue({ code: 'custom', path: [i, 'value'], message: `unknown variable %${name}% (known: DOWNSTREAM_REMOTE_ADDRESS, PEER_IDENTITY, REQUEST_ID, ROUTE, LISTENER, PROTOCOL, REQ(header))` });
  });
});

export const headerMutationConfig = z.object({
  request_headers_to_add: addition,
  request_headers_to_remove: z.array(headerName).default([]),
  response_headers_to_add: addition,
  response_headers_to_remove: z.array(headerName).default([]),
}).strict();

export type HeaderMutationConfig = z.output<typeof headerMutationConfig>;
