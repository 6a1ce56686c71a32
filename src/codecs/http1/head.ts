/**
 * HTTP/1.1 message heads: parsing with RFC 9112's request-smuggling defences, and the framing
 * facts a proxy needs (body length, chunked, keep-alive, upgrade).
 *
 * Parsed: the start line and header fields, kept as a flat [name, value, name, value, …] list in
 * their original order and case. Everything else (the body) stays raw bytes.
 */
import { HttpParseError, type HttpParseErrorCode } from './errors.ts';

export interface HeadLimits {
  /** Bytes of the whole head (start line + fields); beyond it: 431. */
  maxHeadBytes: number;
  /** Header fields; beyond it: 431. */
  maxHeaders: number;
}

export const DEFAULT_HEAD_LIMITS: HeadLimits = { maxHeadBytes: 60 * 1024, maxHeaders: 100 };

interface HeadBase {
  /** 0 or 1: HTTP/1.0 or HTTP/1.1. */
  versionMinor: number;
  /** [name, value, …], names as received. */
  headers: string[];
  /** Declared Content-Length, or -1. */
  contentLength: number;
  chunked: boolean;
  /**
   * The transfer codings, lower-cased and joined ("gzip, chunked"), when chunked; else undefined.
   * A proxy writes framing fields from these two facts, never by copying the received fields:
   * what it forwards then frames exactly as it was framed here (request smuggling).
   */
  transferEncoding: string | undefined;
  /** Lower-cased tokens of the Connection header (a shared empty set when there is none). */
  connection: ReadonlySet<string>;
  /** The peer wants the connection kept open after this message. */
  keepAlive: boolean;
  /** Value of Upgrade when Connection lists "upgrade". */
  upgrade: string | undefined;
}

export interface RequestHead extends HeadBase {
  method: string;
  target: string;
  host: string | undefined;
  expectContinue: boolean;
}

export interface ResponseHead extends HeadBase {
  status: number;
  reason: string;
}

const NO_TOKENS: ReadonlySet<string> = new Set();

/** Connection field values that are one usual token, as they are spelt on the wire → its set. */
const USUAL_CONNECTION_VALUES = new Map<string, Set<string>>();
for (const token of ['keep-alive', 'close', 'upgrade']) {
  const set = new Set([token]);
  for (const spelling of [token, token[0].toUpperCase() + token.slice(1), token.replace(/(^|-)([a-z])/g, (_, d: string, c: string) => d + c.toUpperCase())]) USUAL_CONNECTION_VALUES.set(spelling, set);
}

function fail(code: HttpParseErrorCode, message: string): never {
  throw new HttpParseError(code, message);
}

/** tchar (RFC 9110 §5.6.2): 1 where a byte may appear in a field name or method. */
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1;
for (let c = 48; c <= 57; c++) TCHAR[c] = 1;
for (let c = 65; c <= 90; c++) TCHAR[c] = 1;
for (let c = 97; c <= 122; c++) TCHAR[c] = 1;

/** 1 where a byte may appear in a field value: HTAB, SP, VCHAR, obs-text. No NUL, CR, LF, DEL. */
const VALUE_CHAR = new Uint8Array(256);
VALUE_CHAR[9] = 1;
for (let c = 32; c < 256; c++) VALUE_CHAR[c] = c === 127 ? 0 : 1;

/** 1 where a byte may appear in a request target: visible ASCII and obs-text, no controls or space. */
const TARGET_CHAR = new Uint8Array(256);
for (let c = 0x21; c < 256; c++) TARGET_CHAR[c] = c === 0x7f ? 0 : 1;

/**
 * 1 where a byte may appear in a Host value's host part (RFC 3986 reg-name: unreserved,
 * pct-encoded, sub-delims), without "," (Host is a singleton: a comma is a list someone joined).
 */
const HOST_CHAR = new Uint8Array(256);
for (const c of "-._~%!$&'()*+;=") HOST_CHAR[c.charCodeAt(0)] = 1;
for (let c = 48; c <= 57; c++) HOST_CHAR[c] = 1;
for (let c = 65; c <= 90; c++) HOST_CHAR[c] = 1;
for (let c = 97; c <= 122; c++) HOST_CHAR[c] = 1;

/**
 * A Host value (or an absolute-form authority) is uri-host [":" port] (RFC 9110 §7.2): no
 * userinfo, no spaces, no list. Empty is allowed (a target without an authority).
 */
export function validHost(v: string): boolean {
  let end = v.length;
  const colon = v.lastIndexOf(':');
  if (colon >= 0 && (v.charCodeAt(0) !== 91 /* [ */ || colon > v.indexOf(']'))) {
    for (let i = colon + 1; i < end; i++) if (v.charCodeAt(i) < 48 || v.charCodeAt(i) > 57) return false;
    end = colon;
  }
  if (v.charCodeAt(0) === 91) {
    // IP-literal: "[" hex digits, ":" and "." (and IPvFuture's unreserved / sub-delims) "]"
    if (v.charCodeAt(end - 1) !== 93 || end < 3) return false;
    for (let i = 1; i < end - 1; i++) {
      const c = v.charCodeAt(i);
      if (c !== 58 && HOST_CHAR[c] !== 1) return false;
    }
    return true;
  }
  for (let i = 0; i < end; i++) if (HOST_CHAR[v.charCodeAt(i)] !== 1) return false;
  return true;
}

function allOf(table: Uint8Array, s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) if (table[s.charCodeAt(i)] !== 1) return false;
  return true;
}

/** A Content-Length value of 1–15 plain digits, or -1 (also HTTP/2's content-length check). */
export function plainLength(v: string): number {
  const n = v.length;
  if (n === 0 || n > 15) return -1;
  let x = 0;
  for (let i = 0; i < n; i++) {
    const d = v.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    x = x * 10 + d;
  }
  return x;
}

/**
 * Splits a head, text[start..end) (latin1, without its final blank line), into the start line and
 * fields, validating with lookup tables: the caller made one string of the bytes (one call into
 * C++), the fields are slices of it (cheap in V8), and no regular expression is on the hot path.
 */
function parseFields(text: string, start: number, end: number, limits: HeadLimits, code: HttpParseErrorCode): { startLine: string; headers: string[] } {
  const len = end;
  let lineEnd = text.indexOf('\r', start);
  if (lineEnd < 0 || lineEnd > len) lineEnd = len;
  else if (text.charCodeAt(lineEnd + 1) !== 10) fail(code, 'CR without LF in the start line');
  const startLine = text.slice(start, lineEnd);
  if (startLine.includes('\n')) fail(code, 'bare LF in the start line');
  const headers: string[] = [];
  let pos = lineEnd + 2;
  while (pos < len) {
    if (headers.length >= limits.maxHeaders * 2) fail('SHUTTLE_E_HTTP_HEADERS_TOO_LARGE', `more than ${limits.maxHeaders} header fields`);
    const first = text.charCodeAt(pos);
    if (first === 32 || first === 9) fail(code, 'obsolete line folding (obs-fold) is not accepted');
    let i = pos;
    while (i < len && TCHAR[text.charCodeAt(i)] === 1) i++;
    const c = text.charCodeAt(i);
    if (i === pos || c !== 58 /* : */) {
      if (c === 32 || c === 9) fail(code, 'whitespace between a header name and its colon');
      fail(code, 'header field without a valid name and colon');
    }
    const nameEnd = i++;
    while (i < len && (text.charCodeAt(i) === 32 || text.charCodeAt(i) === 9)) i++;
    const valueStart = i;
    while (i < len && VALUE_CHAR[text.charCodeAt(i)] === 1) i++;
    if (i < len) {
      const bad = text.charCodeAt(i);
      if (bad !== 13) fail(code, bad === 10 ? 'bare LF in header section' : `invalid character in header ${text.slice(pos, nameEnd)}`);
      if (text.charCodeAt(i + 1) !== 10) fail(code, `CR without LF in header ${text.slice(pos, nameEnd)}`);
    }
    let valueEnd = i;
    while (valueEnd > valueStart && (text.charCodeAt(valueEnd - 1) === 32 || text.charCodeAt(valueEnd - 1) === 9)) valueEnd--;
    headers[headers.length] = text.slice(pos, nameEnd);
    headers[headers.length] = text.slice(valueStart, valueEnd);
    pos = i + 2;
  }
  return { startLine, headers };
}

/** The fields framing looks at, by name length (one each), in lower and in the usual case. */
const FRAMING_FIELDS: ([string, string] | undefined)[] = [];
for (const canonical of ['Host', 'Expect', 'Upgrade', 'Connection', 'Content-Length', 'Transfer-Encoding']) {
  FRAMING_FIELDS[canonical.length] = [canonical.toLowerCase(), canonical];
}

/**
 * The lower-cased name if `name` is one of the framing fields, else undefined. Most fields are
 * rejected on their length or first letter, and the usual spelling matches without lower-casing.
 */
function framingField(name: string): string | undefined {
  const f = FRAMING_FIELDS[name.length];
  if (f === undefined) return undefined;
  const [lower, canonical] = f;
  if ((name.charCodeAt(0) | 0x20) !== lower.charCodeAt(0)) return undefined;
  if (name === canonical || name === lower || name.toLowerCase() === lower) return lower;
  return undefined;
}

/** Framing from the fields; shared by requests and responses. */
function framing(headers: string[], versionMinor: number, code: HttpParseErrorCode): Omit<HeadBase, 'versionMinor' | 'headers'> & { host: string | undefined; hostCount: number; expect: string | undefined } {
  let contentLength = -1;
  let transferEncoding: string | undefined;
  let connection: Set<string> | undefined;
  /** `connection` is one of USUAL_CONNECTION_VALUES' sets: copied before anything is added. */
  let connectionShared = false;
  let upgradeValue: string | undefined;
  let host: string | undefined;
  let hostCount = 0;
  let expect: string | undefined;
  for (let i = 0; i < headers.length; i += 2) {
    const name = framingField(headers[i]);
    if (name === undefined) continue;
    const value = headers[i + 1];
    switch (name) {
      case 'content-length': {
        const plain = plainLength(value);
        if (plain >= 0) {
          if (contentLength !== -1 && contentLength !== plain) fail(code, 'differing Content-Length values');
          contentLength = plain;
          break;
        }
        // "5, 5" (a list of identical values) is accepted as 5; differing values are not.
        for (const part of value.split(',')) {
          const v = part.trim();
          if (!/^\d{1,15}$/.test(v)) fail(code, `invalid Content-Length "${value.slice(0, 40)}"`);
          const n = Number(v);
          if (contentLength !== -1 && contentLength !== n) fail(code, 'differing Content-Length values');
          contentLength = n;
        }
        break;
      }
      case 'transfer-encoding':
        transferEncoding = transferEncoding === undefined ? value : `${transferEncoding}, ${value}`;
        break;
      case 'connection': {
        // Nearly every message has one Connection field of one usual token: a Set made once.
        const usual = connection === undefined ? USUAL_CONNECTION_VALUES.get(value) : undefined;
        if (usual !== undefined) {
          connection = usual;
          connectionShared = true;
          break;
        }
        if (connectionShared) {
          connection = new Set(connection);
          connectionShared = false;
        }
        connection ??= new Set<string>();
        for (const t of value.split(',')) if (t.trim()) connection.add(t.trim().toLowerCase());
        break;
      }
      case 'upgrade':
        upgradeValue = value;
        break;
      case 'host':
        host = value;
        hostCount++;
        break;
      case 'expect':
        expect = value.toLowerCase();
        break;
    }
  }
  let chunked = false;
  let codings: string[] | undefined;
  if (transferEncoding !== undefined) {
    if (contentLength !== -1) fail(code, 'both Content-Length and Transfer-Encoding');
    if (versionMinor === 0) fail(code, 'Transfer-Encoding in an HTTP/1.0 message');
    codings = transferEncoding.split(',').map((c) => c.trim().toLowerCase());
    // chunked must be the final coding, and appear once; unknown codings are refused.
    if (codings[codings.length - 1] !== 'chunked' || codings.indexOf('chunked') !== codings.length - 1) fail(code, `unsupported Transfer-Encoding "${transferEncoding.slice(0, 60)}"`);
    for (const c of codings) if (!['chunked', 'gzip', 'deflate', 'compress', 'x-gzip'].includes(c)) fail(code, `unknown transfer coding "${c.slice(0, 40)}"`);
    chunked = true;
  }
  const tokens: ReadonlySet<string> = connection ?? NO_TOKENS;
  const keepAlive = versionMinor === 1 ? !tokens.has('close') : tokens.has('keep-alive');
  const upgrade = tokens.has('upgrade') ? upgradeValue : undefined;
  return { contentLength, chunked, transferEncoding: codings?.join(', '), connection: tokens, keepAlive, upgrade, host, hostCount, expect };
}

function version(v: string, code: HttpParseErrorCode): number {
  if (v === 'HTTP/1.1') return 1;
  if (v === 'HTTP/1.0') return 0;
  if (/^HTTP\/\d\.\d$/.test(v)) fail('SHUTTLE_E_HTTP_VERSION', `unsupported version ${v}`);
  return fail(code, 'malformed HTTP version');
}

/** Parses a request head: text[start..end) is the head (latin1) without its final CRLF CRLF. */
export function parseRequestHead(text: string, start: number, end: number, limits: HeadLimits = DEFAULT_HEAD_LIMITS): RequestHead {
  const code = 'SHUTTLE_E_HTTP_BAD_REQUEST';
  const { startLine, headers } = parseFields(text, start, end, limits, code);
  const sp1 = startLine.indexOf(' ');
  const sp2 = startLine.indexOf(' ', sp1 + 1);
  if (sp1 <= 0 || sp2 < 0 || startLine.indexOf(' ', sp2 + 1) !== -1) fail(code, 'malformed request line');
  const method = startLine.slice(0, sp1);
  const target = startLine.slice(sp1 + 1, sp2);
  if (!allOf(TCHAR, method)) fail(code, 'invalid method');
  if (!allOf(TARGET_CHAR, target)) fail(code, 'invalid request target');
  const versionMinor = version(startLine.slice(sp2 + 1), code);
  const f = framing(headers, versionMinor, code);
  if (versionMinor === 1 && f.hostCount !== 1) fail(code, f.hostCount === 0 ? 'missing Host header' : 'more than one Host header');
  if (f.hostCount > 1) fail(code, 'more than one Host header');
  if (f.host !== undefined && !validHost(f.host)) fail(code, 'invalid Host value');
  return {
    method, target, versionMinor, headers,
    contentLength: f.contentLength, chunked: f.chunked, transferEncoding: f.transferEncoding, connection: f.connection, keepAlive: f.keepAlive, upgrade: f.upgrade,
    host: f.host, expectContinue: f.expect === '100-continue',
  };
}

/** Parses a response head: text[start..end) is the head (latin1) without its final CRLF CRLF. */
export function parseResponseHead(text: string, start: number, end: number, limits: HeadLimits = DEFAULT_HEAD_LIMITS): ResponseHead {
  const code = 'SHUTTLE_E_HTTP_BAD_RESPONSE';
  const { startLine, headers } = parseFields(text, start, end, limits, code);
  // HTTP/x.y SP 3DIGIT [SP reason]
  const n = startLine.length;
  const c = (i: number) => startLine.charCodeAt(i);
  const digit = (i: number) => c(i) >= 48 && c(i) <= 57;
  if (n < 12 || !startLine.startsWith('HTTP/') || !digit(5) || c(6) !== 46 || !digit(7) || c(8) !== 32 || !digit(9) || !digit(10) || !digit(11) || (n > 12 && c(12) !== 32)) {
    fail(code, 'malformed status line');
  }
  const versionMinor = c(5) === 49 && (c(7) === 49 || c(7) === 48) ? c(7) - 48 : fail(code, `unsupported version ${startLine.slice(0, 8)}`);
  const status = (c(9) - 48) * 100 + (c(10) - 48) * 10 + (c(11) - 48);
  const f = framing(headers, versionMinor, code);
  return {
    status, reason: n > 13 ? startLine.slice(13) : '', versionMinor, headers,
    contentLength: f.contentLength, chunked: f.chunked, transferEncoding: f.transferEncoding, connection: f.connection, keepAlive: f.keepAlive, upgrade: f.upgrade,
  };
}

/** A response to a request with this method and this status carries no body (RFC 9112 §6.3). */
export function responseHasNoBody(requestMethod: string, status: number): boolean {
  return requestMethod === 'HEAD' || (status >= 100 && status < 200) || status === 204 || status === 304;
}
