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

function dropped(name: string, connectionTokens: Set<string>, remove: ReadonlySet<string> | undefined): boolean {
  return HOP_BY_HOP.has(name) || connectionTokens.has(name) || (remove?.has(name) ?? false);
}

function addHeaders(out: string[], headers: string[], adds: readonly HeaderToAdd[]): void {
  for (const add of adds) {
    const lower = add.name.toLowerCase();
    if (!add.append) {
      for (let i = 0; i < headers.length; i += 2) {
        if (headers[i].toLowerCase() === lower) headers[i] = ''; // replaced: skipped below
      }
    }
    out.push(`${add.name}: ${add.value}\r\n`);
  }
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
  const headers = head.headers.slice();
  const extra: string[] = [];
  addHeaders(extra, headers, route.requestHeadersToAdd);
  let out = `${head.method} ${ctx.target} HTTP/1.1\r\nHost: ${ctx.host}\r\n`;
  let xff: string | undefined;
  let hasProto = false;
  let hasXfHost = false;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i];
    if (name === '') continue;
    const lower = name.toLowerCase();
    if (lower === 'host' || dropped(lower, head.connection, route.requestHeadersToRemove)) continue;
    if (lower === 'x-forwarded-for') {
      xff = xff === undefined ? headers[i + 1] : `${xff}, ${headers[i + 1]}`;
      continue;
    }
    if (lower === 'x-forwarded-proto') hasProto = true;
    if (lower === 'x-forwarded-host') hasXfHost = true;
    out += `${name}: ${headers[i + 1]}\r\n`;
  }
  out += `X-Forwarded-For: ${xff === undefined ? ctx.clientIp : `${xff}, ${ctx.clientIp}`}\r\n`;
  if (!hasProto) out += 'X-Forwarded-Proto: http\r\n';
  if (!hasXfHost) out += `X-Forwarded-Host: ${ctx.originalHost}\r\n`;
  if (head.upgrade !== undefined) out += `Connection: upgrade\r\nUpgrade: ${head.upgrade}\r\n`;
  return out + extra.join('') + '\r\n';
}

export function downstreamResponseHead(head: ResponseHead, route: Route | undefined, opts: { close: boolean; dechunk: boolean }): string {
  const headers = head.headers.slice();
  const extra: string[] = [];
  if (route) addHeaders(extra, headers, route.responseHeadersToAdd);
  const upgraded = head.status === 101;
  let out = `HTTP/1.1 ${head.status} ${head.reason || STATUS_CODES[head.status] || ''}\r\n`;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i];
    if (name === '') continue;
    const lower = name.toLowerCase();
    if (upgraded && lower === 'upgrade') {
      out += `${name}: ${headers[i + 1]}\r\n`;
      continue;
    }
    if (dropped(lower, head.connection, route?.responseHeadersToRemove)) continue;
    if (opts.dechunk && lower === 'transfer-encoding') continue;
    out += `${name}: ${headers[i + 1]}\r\n`;
  }
  if (upgraded) out += 'Connection: upgrade\r\n';
  else if (opts.close) out += 'Connection: close\r\n';
  return out + extra.join('') + '\r\n';
}

/** A response made by the proxy itself; `code` goes in x-shuttle-error for errors. */
export function localReply(status: number, body: string, opts: { close: boolean; code?: string; headers?: [string, string][]; head?: boolean }): string {
  let out = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n`;
  if (opts.code) out += `x-shuttle-error: ${opts.code}\r\n`;
  for (const [k, v] of opts.headers ?? []) out += `${k}: ${v}\r\n`;
  if (opts.close) out += 'connection: close\r\n';
  return `${out}\r\n${opts.head ? '' : body}`;
}
