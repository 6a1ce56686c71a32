/**
 * Head rewriting for the HTTP proxy: what goes upstream (hop-by-hop fields dropped, X-Forwarded-*
 * set, route mutations applied) and what goes back downstream, plus local replies. Heads are
 * built as latin1 strings: one allocation, written with the body bytes untouched.
 */
import { STATUS_CODES } from 'node:http';
import type { RequestHead, ResponseHead } from '../../codecs/http1/head.ts';
import type { HeaderToAdd } from '../../config/route-schema.ts';
import type { Route } from '../../router/router.ts';

/** Fields that describe one connection, not the message (RFC 9110 §7.6.1). */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'upgrade', 'proxy-authenticate', 'proxy-authorization']);

/**
 * Name lengths that can need attention when forwarding a request / a response: hop-by-hop names,
 * host and X-Forwarded-*, transfer-encoding. A field whose name has another length passes through
 * without being lower-cased, which is most of them.
 */
const FRAMING = ['content-length', 'transfer-encoding'];
const REQUEST_NAME_LENGTHS = lengths([...HOP_BY_HOP, ...FRAMING, 'host', 'expect', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host']);
const RESPONSE_NAME_LENGTHS = lengths([...HOP_BY_HOP, ...FRAMING]);

/**
 * The framing fields of a forwarded message, written from what the decoder framed (one
 * Content-Length value, or the validated transfer codings) instead of copying the received ones:
 * a `Connection` list naming them, or duplicates, can then never make the next hop frame the
 * bytes differently (request smuggling).
 */
function framingFields(head: RequestHead | ResponseHead): string {
  if (head.chunked) return `Transfer-Encoding: ${head.transferEncoding}\r\n`;
  if (head.contentLength >= 0) return `Content-Length: ${head.contentLength}\r\n`;
  return '';
}

function isFraming(lower: string): boolean {
  return lower === 'content-length' || lower === 'transfer-encoding';
}

function lengths(names: string[]): Uint8Array {
  const t = new Uint8Array(64);
  for (const n of names) t[n.length] = 1;
  return t;
}

function dropped(name: string, connectionTokens: ReadonlySet<string>, remove: ReadonlySet<string> | undefined): boolean {
  return HOP_BY_HOP.has(name) || connectionTokens.has(name) || (remove !== undefined && remove.size > 0 && remove.has(name));
}

/** Route additions: appended to `out`; a replacing one blanks the same-named fields of `headers` (a copy). */
function addHeaders(out: string[], headers: string[], adds: readonly HeaderToAdd[]): string[] {
  let own = headers;
  for (const add of adds) {
    const lower = add.name.toLowerCase();
    if (!add.append) {
      for (let i = 0; i < own.length; i += 2) {
        if (own[i].length === lower.length && own[i].toLowerCase() === lower) {
          if (own === headers) own = headers.slice();
          own[i] = ''; // replaced: skipped below
        }
      }
    }
    out.push(`${add.name}: ${add.value}\r\n`);
  }
  return own;
}

export interface UpstreamRequestContext {
  clientIp: string;
  /** The target after prefix rewrite. */
  target: string;
  /** Host header to send. */
  host: string;
  /** The original Host, for X-Forwarded-Host. */
  originalHost: string;
}

export function upstreamRequestHead(head: RequestHead, route: Route, ctx: UpstreamRequestContext): string {
  const extra: string[] = [];
  const headers = route.requestHeadersToAdd.length > 0 ? addHeaders(extra, head.headers, route.requestHeadersToAdd) : head.headers;
  // Connection tokens and configured removals can name any field: then every name is checked.
  const checkAll = head.connection.size > 0 || route.requestHeadersToRemove.size > 0;
  let out = `${head.method} ${ctx.target} HTTP/1.1\r\nHost: ${ctx.host}\r\n`;
  let xff: string | undefined;
  let hasProto = false;
  let hasXfHost = false;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i];
    if (name === '') continue;
    if (checkAll || (name.length < 64 && REQUEST_NAME_LENGTHS[name.length] === 1)) {
      const lower = name.toLowerCase();
      if (lower === 'host' || isFraming(lower) || dropped(lower, head.connection, route.requestHeadersToRemove)) continue;
      // Shuttle answers 100-continue itself (Envoy's default) and sends the body at once.
      if (lower === 'expect' && head.expectContinue) continue;
      if (lower === 'x-forwarded-for') {
        xff = xff === undefined ? headers[i + 1] : `${xff}, ${headers[i + 1]}`;
        continue;
      }
      if (lower === 'x-forwarded-proto') hasProto = true;
      if (lower === 'x-forwarded-host') hasXfHost = true;
    }
    out += `${name}: ${headers[i + 1]}\r\n`;
  }
  out += `X-Forwarded-For: ${xff === undefined ? ctx.clientIp : `${xff}, ${ctx.clientIp}`}\r\n`;
  if (!hasProto) out += 'X-Forwarded-Proto: http\r\n';
  if (!hasXfHost) out += `X-Forwarded-Host: ${ctx.originalHost}\r\n`;
  if (head.upgrade !== undefined) out += `Connection: upgrade\r\nUpgrade: ${head.upgrade}\r\n`;
  out += framingFields(head);
  return extra.length === 0 ? out + '\r\n' : out + extra.join('') + '\r\n';
}

export function downstreamResponseHead(head: ResponseHead, route: Route | undefined, opts: { close: boolean; dechunk: boolean }): string {
  const extra: string[] = [];
  const headers = route !== undefined && route.responseHeadersToAdd.length > 0 ? addHeaders(extra, head.headers, route.responseHeadersToAdd) : head.headers;
  const upgraded = head.status === 101;
  const remove = route?.responseHeadersToRemove;
  const checkAll = head.connection.size > 0 || (remove !== undefined && remove.size > 0);
  let out = `HTTP/1.1 ${head.status} ${head.reason || STATUS_CODES[head.status] || ''}\r\n`;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i];
    if (name === '') continue;
    if (checkAll || (name.length < 64 && RESPONSE_NAME_LENGTHS[name.length] === 1)) {
      const lower = name.toLowerCase();
      if (upgraded && lower === 'upgrade') {
        out += `${name}: ${headers[i + 1]}\r\n`;
        continue;
      }
      if (isFraming(lower) || dropped(lower, head.connection, remove)) continue;
    }
    out += `${name}: ${headers[i + 1]}\r\n`;
  }
  // De-chunked for an HTTP/1.0 client: the body then ends with the connection.
  if (!opts.dechunk) out += framingFields(head);
  if (upgraded) out += 'Connection: upgrade\r\n';
  else if (opts.close) out += 'Connection: close\r\n';
  return extra.length === 0 ? out + '\r\n' : out + extra.join('') + '\r\n';
}

/** A response made by the proxy itself; `code` goes in x-shuttle-error for errors. */
export function localReply(status: number, body: string, opts: { close: boolean; code?: string; headers?: [string, string][]; head?: boolean }): string {
  let out = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n`;
  if (opts.code) out += `x-shuttle-error: ${opts.code}\r\n`;
  for (const [k, v] of opts.headers ?? []) out += `${k}: ${v}\r\n`;
  if (opts.close) out += 'connection: close\r\n';
  return `${out}\r\n${opts.head ? '' : body}`;
}
