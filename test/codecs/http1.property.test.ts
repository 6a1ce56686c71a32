/**
 * Property-based tests of the HTTP/1.1 decoder (src/codecs/http1/decoder.ts), with fast-check:
 *
 * - messages built from structured values (method, target, fields, a Content-Length or chunked
 *   body with random chunk sizes, extensions and trailers; responses with every body framing)
 *   decode to the same head fields, the same raw body bytes (chunked framing included) and the
 *   same trailers, pipelined several to a stream;
 * - the same bytes cut into arbitrary reads decode the same (and with volatileInput, when every
 *   read is overwritten as soon as feed() returns);
 * - no input (random bytes, HTTP-shaped garbage, mutated valid messages) makes it throw anything
 *   but HttpParseError, whole or split.
 *
 * The seed is fixed (test/support/fuzz.ts, FUZZ_SEED overrides it) and named in the describe line.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RequestDecoder, ResponseDecoder, type DecoderOptions } from '../../src/codecs/http1/decoder.ts';
import { HttpParseError } from '../../src/codecs/http1/errors.ts';
import type { RequestHead, ResponseHead } from '../../src/codecs/http1/head.ts';
import { bytesArb as bytes, cutsArb, fcParams, FUZZ_SEED, mutate, mutationsArb, splitAt } from '../support/fuzz.ts';

// ── Decoding harness ─────────────────────────────────────────────────────────────────────────

interface Decoded<H> {
  head: H;
  body: Buffer;
  trailers: string[];
}

interface Outcome<H> {
  messages: Decoded<H>[];
  /** A message whose head was decoded but which did not complete. */
  partialHead: H | undefined;
  error: HttpParseError | undefined;
  /** Responses: what end() returned once every byte was fed. */
  ended?: boolean;
}

/**
 * Feeds the pieces in order, resuming after each message as a connection would once its response
 * is done. Any error that is not an HttpParseError propagates (and fails the property).
 * `overwrite`: each piece is scribbled over once feed() returned (a reused read buffer).
 */
function decodeRequests(pieces: Buffer[], opts: DecoderOptions = {}, overwrite = false): Outcome<RequestHead> {
  const out: Outcome<RequestHead> = { messages: [], partialHead: undefined, error: undefined };
  let chunks: Buffer[] = [];
  const d = new RequestDecoder({
    onHead: (head) => {
      out.partialHead = head;
      chunks = [];
    },
    onBody: (b: Buffer) => chunks.push(Buffer.from(b)),
    onComplete: (trailers) => {
      out.messages.push({ head: out.partialHead!, body: Buffer.concat(chunks), trailers: [...trailers] });
      out.partialHead = undefined;
    },
  }, opts);
  try {
    for (const p of pieces) {
      d.feed(p);
      while (d.paused) d.resume();
      if (overwrite) p.fill(0xee);
    }
  } catch (err) {
    if (!(err instanceof HttpParseError)) throw err;
    out.error = err;
  }
  return out;
}

/** Responses, each to the next method of `methods` (GET once they run out). */
function decodeResponses(pieces: Buffer[], methods: string[], opts: DecoderOptions = {}, overwrite = false): Outcome<ResponseHead> {
  const out: Outcome<ResponseHead> = { messages: [], partialHead: undefined, error: undefined };
  let chunks: Buffer[] = [];
  const d = new ResponseDecoder({
    onHead: (head) => {
      out.partialHead = head;
      chunks = [];
    },
    onBody: (b: Buffer) => chunks.push(Buffer.from(b)),
    onComplete: (trailers) => {
      out.messages.push({ head: out.partialHead!, body: Buffer.concat(chunks), trailers: [...trailers] });
      out.partialHead = undefined;
    },
  }, opts);
  d.expectResponseTo(methods[0] ?? 'GET');
  try {
    for (const p of pieces) {
      d.feed(p);
      while (d.paused) {
        d.expectResponseTo(methods[out.messages.length] ?? 'GET');
        d.resume();
      }
      if (overwrite) p.fill(0xee);
    }
    out.ended = d.end();
  } catch (err) {
    if (!(err instanceof HttpParseError)) throw err;
    out.error = err;
  }
  return out;
}

/** The fields of a decoded head that `expected` names (the head may carry more). */
function pick<H extends object>(head: H, expected: object): Record<string, unknown> {
  return Object.fromEntries(Object.keys(expected).map((k) => [k, (head as Record<string, unknown>)[k]]));
}

/** What a comparison of two outcomes looks at: complete messages, a started one, and failure. */
function summary<H extends object>(o: Outcome<H>) {
  return { messages: o.messages.map((m) => ({ head: m.head, body: m.body.toString('latin1'), trailers: m.trailers })), partialHead: o.partialHead, failed: o.error !== undefined, ended: o.ended };
}

// ── Generators of valid messages ─────────────────────────────────────────────────────────────

const TCHAR = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const HOST_CHAR = "-._~%!$&'()*+;=0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const oneOf = (s: string) => fc.constantFrom(...s.split(''));
const text = (unit: fc.Arbitrary<string>, minLength: number, maxLength: number) => fc.string({ unit, minLength, maxLength });
const charIn = (lo: number, hi: number, except: number[] = []) =>
  fc.integer({ min: lo, max: hi }).filter((c) => !except.includes(c)).map((c) => String.fromCharCode(c));
const token = (min = 1, max = 12) => text(oneOf(TCHAR), min, max);

/**
 * Field-value octets (RFC 9110 §5.5): VCHAR, obs-text (with the ones JavaScript's trim() would
 * take for whitespace, NBSP 0xA0 and NEL 0x85, made likely), and SP/HTAB inside.
 */
const valueChar = fc.oneof(
  { weight: 8, arbitrary: charIn(0x21, 0x7e) },
  { weight: 1, arbitrary: charIn(0x80, 0xff) },
  { weight: 1, arbitrary: fc.constantFrom('\xa0', '\x85', '\xff') },
  { weight: 2, arbitrary: fc.constantFrom(' ', '\t') },
);
/** A value as decoded: optional whitespace (SP, HTAB) around it is not part of it. */
const fieldValue = text(valueChar, 0, 30).map((v) => v.replace(/^[ \t]+|[ \t]+$/g, ''));
const ows = fc.constantFrom('', ' ', '\t', '  ', ' \t ');

/** Names the framing logic reads; random fields avoid them (they are generated on purpose below). */
const FRAMING = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'upgrade', 'expect']);
interface Field { name: string; value: string; before: string; after: string }
const fieldName = token(1, 16).filter((n) => !FRAMING.has(n.toLowerCase()));
const field: fc.Arbitrary<Field> = fc.record({ name: fieldName, value: fieldValue, before: ows, after: ows });
/**
 * Trailer fields. Values here do not begin or end with NBSP (0xA0): the chunked scanner trims
 * trailer values with String.prototype.trim(), which takes NBSP for whitespace (see the it.fails
 * below); head field values keep it, as RFC 9110 says.
 */
const trailerField: fc.Arbitrary<Field> = fc.record({ name: fieldName, value: fieldValue.map((v) => v.replace(/^[ \t\xa0]+|[ \t\xa0]+$/g, '')), before: ows, after: ows });

const hostValue = fc.oneof(
  fc.tuple(text(oneOf(HOST_CHAR), 0, 20), fc.option(fc.integer({ min: 0, max: 65535 }), { nil: undefined })).map(([h, p]) => (p === undefined ? h : `${h}:${p}`)),
  fc.constantFrom('[::1]', '[::1]:8080', '[2001:db8::7]:80', 'example.com:443', 'a'),
);

interface Chunk { data: Buffer; upper: boolean; zeros: number; ext: string | undefined; bws: string }
/** chunk-ext octets: anything but CR, LF, NUL and DEL. */
const extText = text(charIn(0x01, 0xff, [0x0a, 0x0d, 0x7f]), 0, 12);
const chunk: fc.Arbitrary<Chunk> = fc.record({ data: bytes(1, 120), upper: fc.boolean(), zeros: fc.integer({ min: 0, max: 3 }), ext: fc.option(extText.map((e) => `;${e}`), { nil: undefined }), bws: fc.constantFrom('', ' ', '\t ') });

type Body =
  | { kind: 'none' }
  | { kind: 'length'; data: Buffer; name: string; spelling: 'one' | 'list' | 'twice' | 'zeros' }
  | { kind: 'chunked'; chunks: Chunk[]; lastExt: string | undefined; trailers: Field[]; codings: string }
  | { kind: 'close'; data: Buffer };

const lengthBody = fc.record({
  kind: fc.constant('length' as const),
  data: bytes(0, 300),
  name: fc.constantFrom('Content-Length', 'content-length', 'CONTENT-LENGTH'),
  spelling: fc.constantFrom('one' as const, 'one' as const, 'list' as const, 'twice' as const, 'zeros' as const),
});
const chunkedBody = fc.record({
  kind: fc.constant('chunked' as const),
  chunks: fc.array(chunk, { maxLength: 5 }),
  lastExt: fc.option(extText.map((e) => `;${e}`), { nil: undefined }),
  trailers: fc.array(trailerField, { maxLength: 3 }),
  codings: fc.constantFrom('chunked', 'chunked', 'Chunked', 'gzip, chunked', 'deflate,chunked', 'gzip|chunked'),
});

function chunkedBytes(b: Extract<Body, { kind: 'chunked' }>): string {
  let s = '';
  for (const c of b.chunks) {
    const size = c.data.length.toString(16);
    s += '0'.repeat(c.zeros) + (c.upper ? size.toUpperCase() : size) + (c.ext === undefined ? '' : c.bws + c.ext) + '\r\n' + c.data.toString('latin1') + '\r\n';
  }
  s += `0${b.lastExt ?? ''}\r\n`;
  for (const t of b.trailers) s += `${t.name}:${t.before}${t.value}${t.after}\r\n`;
  return `${s}\r\n`;
}

/** A serialised message and what the decoder must report for it. */
interface Built<H> {
  bytes: string;
  head: Partial<H>;
  body: string;
  trailers: string[];
  /** Offsets (in `bytes`) of the CR of each empty line before the request line. */
  emptyLineCrs: number[];
}

/** Field lines with the framing fields put at the given positions among the others. */
function fieldLines(fields: Field[], special: [string, string][], order: number[]): { text: string; headers: string[] } {
  const lines: [string, string, string, string][] = fields.map((f) => [f.name, f.value, f.before, f.after]);
  const space = ['', ' ', '\t', ' ', '  '];
  let previous = { name: '', at: -1 };
  special.forEach(([name, value], k) => {
    const o = order[k % order.length];
    // A field given twice (Transfer-Encoding codings, Content-Length) keeps its order.
    const at = name === previous.name ? Math.max(previous.at + 1, o % (lines.length + 1)) : o % (lines.length + 1);
    lines.splice(at, 0, [name, value, space[o % 5], space[(o >> 3) % 5]]);
    previous = { name, at };
  });
  return {
    text: lines.map(([n, v, b, a]) => `${n}:${b}${v}${a}\r\n`).join(''),
    headers: lines.flatMap(([n, v]) => [n, v]),
  };
}

function connectionFacts(tokens: string[] | undefined, minor: number, upgradeValue: string | undefined) {
  const set = new Set((tokens ?? []).map((t) => t.toLowerCase()));
  return { connection: set, keepAlive: minor === 1 ? !set.has('close') : set.has('keep-alive'), upgrade: set.has('upgrade') ? upgradeValue : undefined };
}

function framingFields(body: Body, minor: number): { special: [string, string][]; contentLength: number; chunked: boolean; transferEncoding: string | undefined; raw: string } {
  if (body.kind === 'length') {
    const n = String(body.data.length);
    const special: [string, string][] = body.spelling === 'twice' ? [[body.name, n], [body.name, n]]
      : [[body.name, body.spelling === 'list' ? `${n}, ${n}` : body.spelling === 'zeros' ? `00${n}` : n]];
    return { special, contentLength: body.data.length, chunked: false, transferEncoding: undefined, raw: body.data.toString('latin1') };
  }
  if (body.kind === 'chunked' && minor === 1) {
    // "a|b": the codings in two Transfer-Encoding fields (read as one list).
    const codings = body.codings.split('|');
    return {
      special: codings.map((c): [string, string] => ['Transfer-Encoding', c]),
      contentLength: -1,
      chunked: true,
      transferEncoding: codings.join(',').split(',').map((c) => c.trim().toLowerCase()).join(', '),
      raw: chunkedBytes(body),
    };
  }
  return { special: [], contentLength: -1, chunked: false, transferEncoding: undefined, raw: body.kind === 'close' ? body.data.toString('latin1') : '' };
}

const requestArb: fc.Arbitrary<Built<RequestHead>> = fc.record({
  empties: fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 4 }) }),
  method: fc.oneof(fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'), token(1, 10)),
  target: fc.oneof(text(charIn(0x21, 0xff, [0x7f]), 1, 40), text(charIn(0x21, 0x7e), 0, 30).map((t) => `/${t}`)),
  minor: fc.constantFrom(0, 1, 1),
  fields: fc.array(field, { maxLength: 8 }),
  host: fc.option(hostValue, { nil: undefined }),
  hostName: fc.constantFrom('Host', 'host', 'HOST'),
  connection: fc.option(fc.array(fc.constantFrom('close', 'keep-alive', 'Keep-Alive', 'upgrade', 'Upgrade', 'x-trace', 'TE'), { minLength: 1, maxLength: 3 }), { nil: undefined }),
  upgrade: fc.option(token(1, 10), { nil: undefined }),
  expect: fc.boolean(),
  body: fc.oneof(fc.record({ kind: fc.constant('none' as const) }), lengthBody, chunkedBody) as fc.Arbitrary<Body>,
  order: fc.array(fc.nat(), { minLength: 8, maxLength: 8 }),
}).map((r) => {
  // HTTP/1.1 needs exactly one Host; HTTP/1.0 may go without. Chunked is HTTP/1.1 only.
  const host = r.minor === 1 ? (r.host ?? 'a') : r.host;
  const body: Body = r.body.kind === 'chunked' && r.minor === 0 ? { kind: 'length', data: Buffer.concat(r.body.chunks.map((c) => c.data)), name: 'Content-Length', spelling: 'one' } : r.body;
  const framing = framingFields(body, r.minor);
  const special: [string, string][] = [...framing.special];
  if (host !== undefined) special.push([r.hostName, host]);
  if (r.connection) special.push(['Connection', r.connection.join(r.connection.length > 1 ? ', ' : '')]);
  if (r.upgrade !== undefined) special.push(['Upgrade', r.upgrade]);
  if (r.expect) special.push(['Expect', '100-continue']);
  const lines = fieldLines(r.fields, special, r.order);
  const prefix = '\r\n'.repeat(r.empties);
  const head: Partial<RequestHead> = {
    method: r.method,
    target: r.target,
    versionMinor: r.minor,
    headers: lines.headers,
    contentLength: framing.contentLength,
    chunked: framing.chunked,
    transferEncoding: framing.transferEncoding,
    ...connectionFacts(r.connection, r.minor, r.upgrade),
    host,
    expectContinue: r.expect,
  };
  return {
    bytes: `${prefix}${r.method} ${r.target} HTTP/1.${r.minor}\r\n${lines.text}\r\n${framing.raw}`,
    head,
    body: framing.raw,
    trailers: body.kind === 'chunked' && r.minor === 1 ? body.trailers.flatMap((t) => [t.name, t.value]) : [],
    emptyLineCrs: Array.from({ length: r.empties }, (_, i) => 2 * i),
  };
});

const STATUSES = [100, 101, 103, 200, 201, 204, 206, 301, 304, 400, 404, 500, 503];
interface BuiltResponse extends Built<ResponseHead> { method: string; untilClose: boolean }

/** `last`: the final message of a stream may be delimited by the close. */
const responseArb = (last: boolean): fc.Arbitrary<BuiltResponse> => fc.record({
  minor: fc.constantFrom(0, 1, 1),
  status: fc.oneof(fc.constantFrom(...STATUSES), fc.integer({ min: 100, max: 999 })),
  reason: fc.option(text(fc.oneof(charIn(0x20, 0x7e), charIn(0x80, 0xff), fc.constant('\t')), 0, 20), { nil: undefined }),
  fields: fc.array(field, { maxLength: 8 }),
  connection: fc.option(fc.array(fc.constantFrom('close', 'keep-alive', 'Keep-Alive'), { minLength: 1, maxLength: 2 }), { nil: undefined }),
  body: fc.oneof(fc.record({ kind: fc.constant('none' as const) }), lengthBody, chunkedBody, fc.record({ kind: fc.constant('close' as const), data: bytes(0, 200) })) as fc.Arbitrary<Body>,
  method: fc.constantFrom('GET', 'GET', 'POST', 'HEAD'),
  order: fc.array(fc.nat(), { minLength: 8, maxLength: 8 }),
}).map((r) => {
  let body: Body = r.body;
  if (body.kind === 'chunked' && r.minor === 0) body = { kind: 'length', data: Buffer.concat(body.chunks.map((c) => c.data)), name: 'Content-Length', spelling: 'one' };
  const noBody = r.method === 'HEAD' || (r.status >= 100 && r.status < 200) || r.status === 204 || r.status === 304;
  // Only the last response of a stream may run until the close, and one that has no body cannot.
  if (body.kind === 'close' && (!last || noBody)) body = { kind: 'none' };
  // A response without framing fields and a body-bearing status is delimited by the close.
  if (body.kind === 'none' && !noBody) body = last ? { kind: 'close', data: Buffer.alloc(0) } : { kind: 'length', data: Buffer.alloc(0), name: 'Content-Length', spelling: 'one' };
  const framing = framingFields(body, r.minor);
  const special: [string, string][] = [...framing.special];
  if (r.connection) special.push(['Connection', r.connection.join(', ')]);
  const lines = fieldLines(r.fields, special, r.order);
  const head: Partial<ResponseHead> = {
    status: r.status,
    reason: r.reason ?? '',
    versionMinor: r.minor,
    headers: lines.headers,
    contentLength: framing.contentLength,
    chunked: framing.chunked,
    transferEncoding: framing.transferEncoding,
    ...connectionFacts(r.connection, r.minor, undefined),
  };
  // HEAD, 1xx, 204 and 304 responses carry no body whatever their framing fields say.
  const wire = noBody ? '' : framing.raw;
  return {
    bytes: `HTTP/1.${r.minor} ${r.status}${r.reason === undefined ? '' : ` ${r.reason}`}\r\n${lines.text}\r\n${wire}`,
    head,
    body: wire,
    trailers: !noBody && body.kind === 'chunked' && r.minor === 1 ? body.trailers.flatMap((t) => [t.name, t.value]) : [],
    emptyLineCrs: [],
    method: r.method,
    untilClose: body.kind === 'close',
  };
});

/** Several requests pipelined on one connection. */
const requestStream = fc.array(requestArb, { minLength: 1, maxLength: 4 }).map((msgs) => {
  let at = 0;
  const emptyLineCrs: number[] = [];
  for (const m of msgs) {
    emptyLineCrs.push(...m.emptyLineCrs.map((o) => at + o));
    at += Buffer.byteLength(m.bytes, 'latin1');
  }
  return { msgs, bytes: Buffer.from(msgs.map((m) => m.bytes).join(''), 'latin1'), emptyLineCrs };
});

const responseStream = fc.tuple(fc.array(responseArb(false), { maxLength: 3 }), responseArb(true)).map(([first, lastOne]) => {
  const msgs = [...first, lastOne];
  return { msgs, bytes: Buffer.from(msgs.map((m) => m.bytes).join(''), 'latin1'), methods: msgs.map((m) => m.method) };
});

function expectMessages<H extends object>(out: Outcome<H>, msgs: Built<H>[]): void {
  expect(out.error).toBeUndefined();
  expect(out.partialHead).toBeUndefined();
  expect(out.messages.length).toBe(msgs.length);
  out.messages.forEach((m, i) => {
    expect(pick(m.head, msgs[i].head)).toEqual(msgs[i].head);
    expect(m.body.toString('latin1')).toBe(msgs[i].body);
    expect(m.trailers).toEqual(msgs[i].trailers);
  });
}

/** Cut points that never fall between the CR and the LF of an empty line before a request (see the it.fails below). */
function avoiding(cuts: number[], length: number, crs: number[]): number[] {
  const bad = new Set(crs.map((cr) => cr + 1));
  return cuts.map((c) => (length === 0 ? 0 : c % length)).filter((c) => !bad.has(c));
}

/** Cut points that never separate a CR from the LF after it. */
function keepingCrlf(cuts: number[], bytes: Buffer): number[] {
  return cuts.map((c) => (bytes.length === 0 ? 0 : c % bytes.length)).filter((c) => !(bytes[c - 1] === 13 && bytes[c] === 10));
}

/** Bytes shaped like HTTP: pieces of its grammar in random order, so the decoder reaches its deeper states. */
const GRAMMAR = [
  'GET', 'POST', ' ', '  ', '/', '/a?b=1', '*', 'http://a/', 'HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/1.1 200 OK', 'HTTP/1.0 204', '\r\n', '\r\n\r\n', '\n', '\r',
  'Host: a', 'Host:', ':', ': ', 'X-A: 1', 'Content-Length: ', 'Content-Length: 3', '0', '5', '10', '1, 1', 'ffffffffffffffff', 'Transfer-Encoding: chunked',
  'Transfer-Encoding: gzip', 'Connection: close', 'Connection: upgrade', 'Upgrade: x', 'Expect: 100-continue', ';', ';a=b', '\t', '\x00', '\x7f', '\xff', 'abc', '0\r\n\r\n',
];
const httpShaped = fc.array(fc.oneof({ weight: 5, arbitrary: fc.constantFrom(...GRAMMAR) }, { weight: 1, arbitrary: text(charIn(0, 255), 1, 4) }), { maxLength: 60 })
  .map((parts) => Buffer.from(parts.join(''), 'latin1'));

/** Small limits, so that 414/431/413 paths are reached too. */
const limitsArb = fc.option(fc.record({ maxHeadBytes: fc.integer({ min: 16, max: 2048 }), maxHeaders: fc.integer({ min: 1, max: 12 }), maxBodyBytes: fc.integer({ min: 0, max: 400 }) }), { nil: undefined })
  .map((l): DecoderOptions => (l ? { limits: { maxHeadBytes: l.maxHeadBytes, maxHeaders: l.maxHeaders }, maxBodyBytes: l.maxBodyBytes } : {}));

// ── Properties ───────────────────────────────────────────────────────────────────────────────

describe(`HTTP/1.1 decoder properties (fast-check seed ${FUZZ_SEED})`, () => {
  it('decodes pipelined requests built from structured values to the same head, body bytes and trailers', () => {
    fc.assert(fc.property(requestStream, ({ msgs, bytes }) => {
      expectMessages(decodeRequests([bytes]), msgs);
    }), fcParams(600));
  });

  it('decodes responses of every framing (length, chunked, none, until close; HEAD, 1xx, 204, 304) the same way', () => {
    fc.assert(fc.property(responseStream, ({ msgs, bytes, methods }) => {
      const out = decodeResponses([bytes], methods);
      expect(out.ended).toBe(true);
      expectMessages(out, msgs);
    }), fcParams(600));
  });

  it('decodes the same requests from the same bytes cut into arbitrary reads', () => {
    fc.assert(fc.property(requestStream, cutsArb(16), ({ msgs, bytes, emptyLineCrs }, cuts) => {
      expectMessages(decodeRequests(splitAt(bytes, avoiding(cuts, bytes.length, emptyLineCrs))), msgs);
    }), fcParams(600));
  });

  it('decodes the same responses from the same bytes cut into arbitrary reads', () => {
    fc.assert(fc.property(responseStream, cutsArb(16), ({ msgs, bytes, methods }, cuts) => {
      const out = decodeResponses(splitAt(bytes, cuts), methods);
      expect(out.ended).toBe(true);
      expectMessages(out, msgs);
    }), fcParams(500));
  });

  it('decodes the same with volatileInput when every read is overwritten once feed() returns', () => {
    fc.assert(fc.property(requestStream, responseStream, cutsArb(16), (req, res, cuts) => {
      expectMessages(decodeRequests(splitAt(req.bytes, avoiding(cuts, req.bytes.length, req.emptyLineCrs)), { volatileInput: true }, true), req.msgs);
      expectMessages(decodeResponses(splitAt(res.bytes, cuts), res.methods, { volatileInput: true }, true), res.msgs);
    }), fcParams(300));
  });

  it('decodes one byte at a time, too', () => {
    fc.assert(fc.property(requestStream, responseStream, (req, res) => {
      const ones = (b: Buffer) => Array.from({ length: b.length }, (_, i) => b.subarray(i, i + 1));
      // (Empty lines before a request are left out here: see the it.fails below.)
      const noEmpties = req.msgs.every((m) => m.emptyLineCrs.length === 0);
      if (noEmpties) expectMessages(decodeRequests(ones(req.bytes)), req.msgs);
      expectMessages(decodeResponses(ones(res.bytes), res.methods), res.msgs);
    }), fcParams(150));
  });

  it('throws nothing but HttpParseError for arbitrary bytes, whole or split, with default or small limits', () => {
    fc.assert(fc.property(bytes(0, 1500), cutsArb(8), limitsArb, fc.constantFrom('GET', 'HEAD'), (input, cuts, opts, method) => {
      decodeRequests([input], opts);
      decodeRequests(splitAt(input, cuts), opts);
      decodeResponses([input], [method], opts);
      decodeResponses(splitAt(input, cuts), [method], opts);
    }), fcParams(1500));
  });

  it('throws nothing but HttpParseError for HTTP-shaped garbage, whole or split', () => {
    fc.assert(fc.property(httpShaped, cutsArb(8), limitsArb, (input, cuts, opts) => {
      decodeRequests([input], opts);
      decodeRequests(splitAt(input, cuts), opts);
      decodeResponses([input], ['GET'], opts);
      decodeResponses(splitAt(input, cuts), ['POST'], opts);
    }), fcParams(2000));
  });

  it('throws nothing but HttpParseError for mutated valid messages, and a split decodes as the whole does', () => {
    fc.assert(fc.property(requestStream, responseStream, mutationsArb(4), cutsArb(12), limitsArb, (req, res, ops, cuts, opts) => {
      const r = mutate(req.bytes, ops);
      const s = mutate(res.bytes, ops);
      decodeRequests([r], opts);
      decodeResponses([s], res.methods, opts);
      // (Five or more empty lines, and a split between an empty line's CR and LF, are known to
      // decode differently when split: see the it.fails below.)
      // (Head limits are left out of the comparison: a head within 3 bytes of the limit is
      // refused when split, see the it.fails below; the no-throw checks use them.)
      decodeRequests(splitAt(r, cuts), opts);
      decodeResponses(splitAt(s, cuts), res.methods, opts);
      const cmp: DecoderOptions = { maxBodyBytes: opts.maxBodyBytes };
      const wholeReq = decodeRequests([r], cmp);
      const wholeRes = decodeResponses([s], res.methods, cmp);
      if (!r.includes('\r\n'.repeat(5))) expect(summary(decodeRequests(splitAt(r, keepingCrlf(cuts, r)), cmp))).toEqual(summary(wholeReq));
      expect(summary(decodeResponses(splitAt(s, cuts), res.methods, cmp))).toEqual(summary(wholeRes));
    }), fcParams(1500));
  });

  // ── Known bugs (src/codecs/http1 is being restructured; not fixed here). Each property holds
  // for correct code and fails today, so the suite stays green until the fix lands. ──────────

  // BUG: a request preceded by an empty line (which RFC 9112 §2.2 says to ignore, and the decoder
  // does when it arrives in one read) is refused with 400 when the read ends between that line's
  // CR and LF: the CR is kept as the start of a head (headScanned = 1), so the next read skips no
  // empty line and parses "\r\nGET …" as an empty request line. Minimal case: feed("\r"), then
  // feed("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"). Pipelined too: "…\r\n\r\n\r" | "\nGET …".
  it('(fixed) a read ending between the CR and LF of an empty line before a request decodes the request as one read would', () => {
    fc.assert(fc.property(requestStream, fc.nat(), ({ msgs, bytes, emptyLineCrs }, k) => {
      fc.pre(emptyLineCrs.length > 0);
      const cut = emptyLineCrs[k % emptyLineCrs.length] + 1;
      expectMessages(decodeRequests([bytes.subarray(0, cut), bytes.subarray(cut)]), msgs);
    }), fcParams(200));
  });

  // BUG: the limit of 4 empty lines before a request line is counted per read, not per message:
  // "\r\n" × 5 + a request is refused (400) in one read and accepted when the empty lines come in
  // reads of up to four, so any number of them passes. Minimal case: feed("\r\n\r\n"),
  // feed("\r\n\r\n"), feed("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n") decodes a request;
  // the same bytes in one feed() throw.
  it('(fixed) five or more empty lines before a request decode the same whole and split', () => {
    fc.assert(fc.property(requestArb, fc.integer({ min: 5, max: 12 }), cutsArb(8), (m, n, cuts) => {
      const bytes = Buffer.from('\r\n'.repeat(n) + m.bytes.replace(/^(\r\n)+/, ''), 'latin1');
      const evenCuts = cuts.map((c) => 2 * (c % (n + 1)));
      expect(summary(decodeRequests(splitAt(bytes, evenCuts)))).toEqual(summary(decodeRequests([bytes])));
    }), fcParams(200));
  });

  // BUG (minor): trailer values are trimmed with String.prototype.trim(), which also removes NBSP
  // (0xA0, an obs-text octet) at either end; head field values keep it, and RFC 9110 §5.5 makes
  // only SP and HTAB optional whitespace. The trailers reported differ from the ones on the wire
  // (the raw body forwarded is unchanged). Minimal case: "0\r\nX-T: \xa0v\r\n\r\n" gives
  // ["X-T", "v"], not ["X-T", "\xa0v"].
  it('(fixed) a trailer value beginning or ending with NBSP (0xA0) keeps it', () => {
    fc.assert(fc.property(fieldName, fieldValue, fc.constantFrom('\xa0', '\xa0\xa0'), fc.boolean(), (name, value, nbsp, atStart) => {
      const v = atStart ? nbsp + value : value + nbsp;
      const out = decodeRequests([Buffer.from(`POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n${name}: ${v}\r\n\r\n`, 'latin1')]);
      expect(out.messages[0].trailers).toEqual([name, v]);
    }), fcParams(100));
  });

  // BUG (minor): the head size limit is checked on an incomplete head including the part of its
  // final CRLF CRLF that has arrived, and on a complete one without it. A head up to 3 bytes under
  // the limit (max_request_headers_kb; the same for upstream responses) is accepted in one read and
  // refused with 431 (502 for a response) when a read ends inside its final CRLF CRLF, so whether a
  // request near the limit passes depends on TCP segmentation. Minimal case: limits.maxHeadBytes =
  // 93 and the 93-byte head "GET /a HTTP/1.1\r\nHost: a\r\nX-Pad: " + "x" × 60: feed(head +
  // "\r\n\r\n") decodes it, feed(head + "\r"), feed("\n\r\n") throws 431.
  it('(fixed) a head just under the size limit is accepted when a read ends inside its final CRLF CRLF', () => {
    fc.assert(fc.property(requestArb, responseArb(false), fc.integer({ min: 0, max: 2 }), fc.integer({ min: 1, max: 3 }), (req, res, slack, cut) => {
      const cases: [Buffer, (p: Buffer[], o: DecoderOptions) => unknown][] = [
        [Buffer.from(req.bytes.replace(/^(\r\n)+/, ''), 'latin1'), (p, o) => summary(decodeRequests(p, o))],
        [Buffer.from(res.bytes, 'latin1'), (p, o) => summary(decodeResponses(p, [res.method], o))],
      ];
      for (const [bytes, decode] of cases) {
        const headLength = bytes.indexOf('\r\n\r\n');
        const opts = { limits: { maxHeadBytes: headLength + slack, maxHeaders: 1000 } };
        const at = headLength + cut;
        expect(decode([bytes.subarray(0, at), bytes.subarray(at)], opts)).toEqual(decode([bytes], opts));
      }
    }), fcParams(200));
  });
});
