/**
 * Checks of a decoded HTTP/2 field list (RFC 9113 §8.2, §8.3) and its conversion to a HeaderMap:
 * a request, a response or trailers that breaks them is malformed (the stream is reset with
 * PROTOCOL_ERROR), never passed on. Names must be lower-case tokens, pseudo-headers come first,
 * once each and only the ones the message may have; connection-specific fields are refused (TE
 * only as "trailers"); values hold no NUL, CR or LF and no whitespace at either end;
 * content-length is digits (repeated only with the same value); cookies sent as several fields
 * are joined (§8.2.3); Host must agree with :authority.
 */
import { plainLength, validHost } from '../http1/head.ts';
import { HeaderMap } from '../../stream/header-map.ts';

type Kind = 'request' | 'response' | 'trailers';

/** tchar, lower case only (RFC 9110 §5.6.2; upper case is malformed in HTTP/2). */
const NAME_CHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") NAME_CHAR[c.charCodeAt(0)] = 1;
for (let c = 48; c <= 57; c++) NAME_CHAR[c] = 1;
for (let c = 97; c <= 122; c++) NAME_CHAR[c] = 1;

/**
 * Strings found valid lately, direct-mapped by length. Why: most names and values of a message
 * are the very strings of the previous one (the HPACK decoder hands out its table's strings and
 * remembers literals), so a repeat is checked by identity (or an equal-length compare) instead
 * of a pass over its characters. Validity depends on the characters only, so a string equal to
 * one found valid is valid.
 */
const VALID_NAMES: string[] = new Array<string>(64).fill('');
const VALID_VALUES: string[] = new Array<string>(64).fill('');
let lastValidHost = '';

function validName(name: string): boolean {
  const n = name.length;
  if (n === 0) return false;
  const slot = n & 63;
  if (VALID_NAMES[slot] === name) return true;
  for (let i = 0; i < n; i++) if (NAME_CHAR[name.charCodeAt(i)] !== 1) return false;
  VALID_NAMES[slot] = name;
  return true;
}

function validValue(v: string): boolean {
  const n = v.length;
  if (n === 0) return true;
  const slot = n & 63;
  if (VALID_VALUES[slot] === v) return true;
  const first = v.charCodeAt(0);
  const last = v.charCodeAt(n - 1);
  if (first === 32 || first === 9 || last === 32 || last === 9) return false;
  for (let i = 0; i < n; i++) {
    const c = v.charCodeAt(i);
    if (c === 0 || c === 10 || c === 13) return false;
  }
  VALID_VALUES[slot] = v;
  return true;
}

/**
 * The checked message, or why it is malformed. `list` (the HPACK decoder's, made for this block)
 * becomes the map's field list: regular fields are moved to its front, in place.
 */
export function checkFields(list: string[], kind: Kind, scheme: string): HeaderMap | string {
  const h = new HeaderMap(list);
  let w = 0;
  let regular = false;
  let method: string | undefined;
  let path: string | undefined;
  let authority: string | undefined;
  let schemeSeen: string | undefined;
  let status: string | undefined;
  let host: string | undefined;
  let cookie: string | undefined;
  const n = list.length;
  for (let i = 0; i < n; i += 2) {
    const name = list[i];
    const value = list[i + 1];
    if (name.charCodeAt(0) === 58 /* : */) {
      if (regular) return `pseudo-header ${name} after a regular field`;
      if (kind === 'trailers') return `pseudo-header ${name} in trailers`;
      switch (name) {
        case ':method': if (kind !== 'request' || method !== undefined) return `unexpected ${name}`; method = value; break;
        case ':path': if (kind !== 'request' || path !== undefined) return `unexpected ${name}`; path = value; break;
        case ':authority': if (kind !== 'request' || authority !== undefined) return `unexpected ${name}`; authority = value; break;
        case ':scheme': if (kind !== 'request' || schemeSeen !== undefined) return `unexpected ${name}`; schemeSeen = value; break;
        case ':status': if (kind !== 'response' || status !== undefined) return `unexpected ${name}`; status = value; break;
        default: return `unknown pseudo-header ${name.slice(0, 40)}`;
      }
      if (!validValue(value)) return `invalid value for ${name}`;
      continue;
    }
    regular = true;
    if (!validName(name)) return `invalid field name "${name.slice(0, 40)}"`;
    if (!validValue(value)) return `invalid value for ${name}`;
    switch (name) {
      case 'connection': case 'keep-alive': case 'proxy-connection': case 'transfer-encoding': case 'upgrade':
        return `connection-specific field ${name}`;
      case 'te':
        if (value !== 'trailers') return 'TE other than "trailers"';
        break;
      case 'content-length': {
        const n = plainLength(value); // (by hand: a regular expression here was 0.5% of the proxy's samples)
        if (n < 0) return 'invalid content-length';
        if (h.contentLength >= 0 && h.contentLength !== n) return 'differing content-length values';
        h.contentLength = n;
        break;
      }
      case 'host':
        if (host !== undefined) return 'more than one host field';
        host = value;
        break;
      case 'cookie':
        cookie = cookie === undefined ? value : `${cookie}; ${value}`;
        continue;
    }
    list[w++] = name;
    list[w++] = value;
  }
  if (w !== n) list.length = w;
  if (cookie !== undefined) list.push('cookie', cookie);
  if (kind === 'response') {
    if (status === undefined || status.length !== 3 || !(Number(status) >= 100)) return 'missing or invalid :status';
    h.status = Number(status);
    return h;
  }
  if (kind === 'trailers') return h;
  if (method === undefined || !validName(method.toLowerCase())) return 'missing or invalid :method';
  h.method = method;
  if (method === 'CONNECT') {
    if (authority === undefined || path !== undefined || schemeSeen !== undefined) return 'CONNECT needs :authority and no :scheme or :path';
  } else {
    if (schemeSeen === undefined || path === undefined || path.length === 0) return 'missing :scheme or :path';
    if (path.charCodeAt(0) !== 47 /* / */ && !(path === '*' && method === 'OPTIONS')) return 'invalid :path';
    for (let i = 0; i < path.length; i++) {
      const c = path.charCodeAt(i);
      if (c <= 0x20 || c === 0x7f) return 'invalid :path';
    }
  }
  const auth = authority ?? host ?? '';
  if (authority !== undefined && host !== undefined && host !== authority) return 'host and :authority differ';
  if (auth !== lastValidHost) {
    if (!validHost(auth)) return 'invalid :authority';
    lastValidHost = auth;
  }
  h.path = path ?? '';
  h.authority = auth;
  h.scheme = schemeSeen ?? scheme;
  return h;
}
