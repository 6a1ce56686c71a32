/**
 * HTTP/1.1 heads written out: a request or response head goes straight into the output's staging
 * buffer (stream/socket-output.ts `reserve()`), one latin1 write per string.
 *
 * Why: a head built by string concatenation (`out += name + ': ' + value + '\r\n'` per field)
 * makes several strings per field, and the joined write then flattens them before copying: the
 * response head was the HTTP/1.1 proxy's largest single allocation (~800 bytes per request,
 * `PROTOCOL=http1 node bench/allocations.ts`). Written in place, a head costs its bytes only,
 * and a small response whose body is copied in behind it (STAGED_BODY_BYTES) leaves in one write from
 * the staging buffer, with no join.
 *
 * Strings are written as latin1, a byte per UTF-16 unit, as the joined write wrote heads before:
 * a string's length is its size on the wire.
 */
import { isConnectionField } from '../../stream/header-map.ts';
import type { SocketOutput } from '../../stream/socket-output.ts';

type Latin1Buffer = Buffer & { latin1Write(s: string, offset: number): number };

/** A body at most this large is copied in behind its head (cheaper than a piece of its own). */
export const STAGED_BODY_BYTES = 1024;

/** Bytes of the field lines of `fields` (name/value pairs), the connection fields left out. */
function fieldsLength(fields: readonly string[]): number {
  let n = 0;
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i];
    if (!isConnectionField(name)) n += name.length + fields[i + 1].length + 4;
  }
  return n;
}

function writeFields(b: Latin1Buffer, at: number, fields: readonly string[]): number {
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i];
    if (isConnectionField(name)) continue;
    at += b.latin1Write(name, at);
    b[at++] = 0x3a; // ':'
    b[at++] = 0x20;
    at += b.latin1Write(fields[i + 1], at);
    b[at++] = 0x0d;
    b[at++] = 0x0a;
  }
  return at;
}

/** `statusLine` (with its CRLF), the fields, then `tail` (framing lines and the blank line). Returns the bytes written. */
export function writeResponseHead(out: SocketOutput, statusLine: string, fields: readonly string[], tail: string): number {
  const n = statusLine.length + fieldsLength(fields) + tail.length;
  let at = out.reserve(n);
  const b = out.staged as Latin1Buffer;
  at += b.latin1Write(statusLine, at);
  at = writeFields(b, at, fields);
  b.latin1Write(tail, at);
  return n;
}

const HTTP11_HOST = ' HTTP/1.1\r\nHost: ';

/** `METHOD path HTTP/1.1`, `Host`, the fields, then `tail`. Returns the bytes written. */
export function writeRequestHead(out: SocketOutput, method: string, path: string, authority: string, fields: readonly string[], tail: string): number {
  const n = method.length + 1 + path.length + HTTP11_HOST.length + authority.length + 2 + fieldsLength(fields) + tail.length;
  let at = out.reserve(n);
  const b = out.staged as Latin1Buffer;
  at += b.latin1Write(method, at);
  b[at++] = 0x20;
  at += b.latin1Write(path, at);
  at += b.latin1Write(HTTP11_HOST, at);
  at += b.latin1Write(authority, at);
  b[at++] = 0x0d;
  b[at++] = 0x0a;
  at = writeFields(b, at, fields);
  b.latin1Write(tail, at);
  return n;
}

/** Field lines of a list, without the connection fields (the codec writes framing itself), as a string. */
export function fieldLines(fields: readonly string[]): string {
  let out = '';
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i];
    if (isConnectionField(name)) continue;
    out += `${name}: ${fields[i + 1]}\r\n`;
  }
  return out;
}
