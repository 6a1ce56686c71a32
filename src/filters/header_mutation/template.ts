/**
 * Header values with Envoy-style variables, compiled once per config into a function: literal
 * text is kept as it is, %NAME% reads the request (unknown names are refused at validation).
 */
import type { HeaderMap } from '../../stream/header-map.ts';
import type { StreamInfo } from '../api.ts';

type Part = string | ((info: StreamInfo, h: HeaderMap) => string);

const VARIABLES: Record<string, (info: StreamInfo, h: HeaderMap) => string> = {
  DOWNSTREAM_REMOTE_ADDRESS: (info) => info.clientIp,
  PEER_IDENTITY: (info) => info.tls?.peer?.identity ?? '',
  REQUEST_ID: (info) => String(info.metadata.get('request_id') ?? ''),
  ROUTE: (info) => info.route ?? '',
  LISTENER: (info) => info.listener,
  PROTOCOL: (info) => info.protocol,
};

export const VARIABLE_PATTERN = /%(?:REQ\(([!#$%&'*+.^_`|~0-9A-Za-z-]+)\)|([A-Z_]+))%/g;

/** Unknown variable names in `value` (for validation). */
export function unknownVariables(value: string): string[] {
  const out: string[] = [];
  for (const m of value.matchAll(VARIABLE_PATTERN)) if (m[2] !== undefined && !(m[2] in VARIABLES)) out.push(m[2]);
  return out;
}

export function compileTemplate(value: string): (info: StreamInfo, h: HeaderMap) => string {
  const parts: Part[] = [];
  let last = 0;
  for (const m of value.matchAll(VARIABLE_PATTERN)) {
    if (m.index > last) parts.push(value.slice(last, m.index));
    if (m[1] !== undefined) {
      const name = m[1].toLowerCase();
      parts.push((_info, h) => h.get(name) ?? '');
    } else {
      parts.push(VARIABLES[m[2]] ?? m[0]);
    }
    last = m.index + m[0].length;
  }
  if (last < value.length) parts.push(value.slice(last));
  if (parts.length === 0) return () => '';
  if (parts.length === 1 && typeof parts[0] === 'string') {
    const s = parts[0];
    return () => s;
  }
  // A value made from a request must still be a valid field value.
  return (info, h) => parts.map((p) => (typeof p === 'string' ? p : p(info, h))).join('').replace(/[\r\n\0]/g, '');
}
