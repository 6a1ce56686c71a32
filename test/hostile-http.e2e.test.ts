/**
 * Hostile HTTP/1.1 input, on raw sockets through the real CLI, against a real node:http upstream
 * (the "victim" parser, llhttp). Each vector says what the client meant (which requests it sent
 * as requests) and what Shuttle must answer; the suite fails if the upstream ever parses a request
 * the client did not send as one (request smuggling), if the status differs, or if a worker
 * restarts. Vectors carry a unique marker in every path, so they run concurrently.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpUpstream, type HttpUpstream } from './support/http.ts';
import { startShuttle, testConfig, type ShuttleProcess } from './support/shuttle.ts';

interface Vector {
  name: string;
  /** The bytes, for marker `m` (put into every path). */
  raw: (m: string) => string;
  /** Status of the first response; a list when several are acceptable. */
  status: number | number[];
  /** Paths (without the marker's host) the upstream must see, in order: exactly these. */
  upstream: (m: string) => string[];
  /** Checks on the requests the upstream saw. */
  check?: (seen: HttpUpstream['requests']) => void;
}

const H = (m: string, extra = '') => `Host: a\r\n${extra}`;
const none = () => [];
const one = (m: string) => [`/v${m}`];

/** Body that, if a hop forgot its framing, would be parsed as a second request. */
const smuggled = (m: string) => `GET /smuggled${m} HTTP/1.1\r\nHost: a\r\n\r\n`;

const vectors: Vector[] = [
  // ---- request line --------------------------------------------------------------------------
  { name: 'baseline GET', raw: (m) => `GET /v${m} HTTP/1.1\r\n${H(m)}\r\n`, status: 200, upstream: one },
  { name: 'two spaces after the method', raw: (m) => `GET  /v${m} HTTP/1.1\r\n${H(m)}\r\n`, status: 400, upstream: none },
  { name: 'tab as separator', raw: (m) => `GET\t/v${m} HTTP/1.1\r\n${H(m)}\r\n`, status: 400, upstream: none },
  { name: 'missing version (HTTP/0.9 shape)', raw: (m) => `GET /v${m}\r\n${H(m)}\r\n`, status: 400, upstream: none },
  { name: 'HTTP/2.0 in an HTTP/1 request line', raw: (m) => `GET /v${m} HTTP/2.0\r\n${H(m)}\r\n`, status: 505, upstream: none },
  { name: 'HTTP/1.2', raw: (m) => `GET /v${m} HTTP/1.2\r\n${H(m)}\r\n`, status: 505, upstream: none },
  { name: 'lower-case version', raw: (m) => `GET /v${m} http/1.1\r\n${H(m)}\r\n`, status: 400, upstream: none },
  { name: 'space inside the target', raw: (m) => `GET /v${m} x HTTP/1.1\r\n${H(m)}\r\n`, status: 400, upstream: none },
  { name: 'control byte in the target', raw: (m) => `GET /v${m}\x01 HTTP/1.1\r\n${H(m)}\r\n`, status: 400, upstream: none },
  { name: 'DEL in the target', raw: (m) => `GET /v${m}\x7f HTTP/1.1\r\n${H(m)}\r\n`, status: 400, upstream: none },
  { name: 'NUL in the method', raw: (m) => `G\x00T /v${m} HTTP/1.1\r\n${H(m)}\r\n`, status: 400, upstream: none },
  { name: 'absolute-form with userinfo', raw: (m) => `GET http://user@a/v${m} HTTP/1.1\r\n${H(m)}\r\n`, status: 400, upstream: none },
  { name: 'absolute-form', raw: (m) => `GET http://a/v${m} HTTP/1.1\r\n${H(m)}\r\n`, status: 200, upstream: one },
  { name: 'asterisk-form on GET', raw: (m) => `GET * HTTP/1.1\r\n${H(m)}\r\nX-M: ${m}\r\n\r\n`, status: 400, upstream: none },
  { name: 'CONNECT', raw: (m) => `CONNECT a${m}:443 HTTP/1.1\r\nHost: a:443\r\n\r\n`, status: 405, upstream: none },
  { name: 'request line over the head limit (414)', raw: (m) => `GET /v${m}?${'a'.repeat(5000)} HTTP/1.1\r\n${H(m)}\r\n`, status: 414, upstream: none },
  { name: 'empty lines before the request line', raw: (m) => `\r\n\r\nGET /v${m} HTTP/1.1\r\n${H(m)}\r\n`, status: 200, upstream: one },
  { name: 'bare LF line endings', raw: (m) => `GET /v${m} HTTP/1.1\nHost: a\n\n`, status: 400, upstream: none },
  { name: 'bare CR in the request line', raw: (m) => `GET /v${m} HTTP/1.1\r${H(m)}\r\n`, status: 400, upstream: none },
  { name: 'garbage instead of a method', raw: (m) => `\x16\x03\x01 /v${m} HTTP/1.1\r\n${H(m)}\r\n`, status: 400, upstream: none },

  // ---- header fields -------------------------------------------------------------------------
  { name: 'space before the colon', raw: (m) => `GET /v${m} HTTP/1.1\r\nHost : a\r\n\r\n`, status: 400, upstream: none },
  { name: 'obs-fold', raw: (m) => `GET /v${m} HTTP/1.1\r\n${H(m)}X-A: 1\r\n 2\r\n\r\n`, status: 400, upstream: none },
  { name: 'invalid character in a name', raw: (m) => `GET /v${m} HTTP/1.1\r\n${H(m)}X(a): 1\r\n\r\n`, status: 400, upstream: none },
  { name: 'empty name', raw: (m) => `GET /v${m} HTTP/1.1\r\n${H(m)}: 1\r\n\r\n`, status: 400, upstream: none },
  { name: 'NUL in a value', raw: (m) => `GET /v${m} HTTP/1.1\r\n${H(m)}X-A: 1\x002\r\n\r\n`, status: 400, upstream: none },
  { name: 'bare CR in a value', raw: (m) => `GET /v${m} HTTP/1.1\r\n${H(m)}X-A: 1\r2\r\n\r\n`, status: 400, upstream: none },
  { name: 'bare LF in a value', raw: (m) => `GET /v${m} HTTP/1.1\r\n${H(m)}X-A: 1\n2\r\n\r\n`, status: 400, upstream: none },
  { name: 'too many fields', raw: (m) => `GET /v${m} HTTP/1.1\r\n${H(m)}${Array.from({ length: 30 }, (_, i) => `X-${i}: 1\r\n`).join('')}\r\n`, status: 431, upstream: none },
  { name: 'header section over the limit', raw: (m) => `GET /v${m} HTTP/1.1\r\n${H(m)}X-Big: ${'a'.repeat(5000)}\r\n\r\n`, status: 431, upstream: none },
  { name: 'obs-text in a value is passed on', raw: (m) => `GET /v${m} HTTP/1.1\r\n${H(m)}X-A: caf\xe9\r\n\r\n`, status: 200, upstream: one },
  { name: 'name with a trailing tab before the colon', raw: (m) => `GET /v${m} HTTP/1.1\r\n${H(m)}X-A\t: 1\r\n\r\n`, status: 400, upstream: none },

  // ---- Host ----------------------------------------------------------------------------------
  { name: 'no Host in HTTP/1.1', raw: (m) => `GET /v${m} HTTP/1.1\r\n\r\n`, status: 400, upstream: none },
  { name: 'two Host fields', raw: (m) => `GET /v${m} HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n`, status: 400, upstream: none },
  { name: 'Host with a list', raw: (m) => `GET /v${m} HTTP/1.1\r\nHost: a, b\r\n\r\n`, status: 400, upstream: none },
  { name: 'Host with a space and userinfo', raw: (m) => `GET /v${m} HTTP/1.1\r\nHost: a b@evil\r\n\r\n`, status: 400, upstream: none },
  { name: 'Host with userinfo', raw: (m) => `GET /v${m} HTTP/1.1\r\nHost: u@a\r\n\r\n`, status: 400, upstream: none },
  { name: 'Host with a path', raw: (m) => `GET /v${m} HTTP/1.1\r\nHost: a/b\r\n\r\n`, status: 400, upstream: none },
  { name: 'Host with a bad port', raw: (m) => `GET /v${m} HTTP/1.1\r\nHost: a:8x\r\n\r\n`, status: 400, upstream: none },
  { name: 'Host as an IPv6 literal with a port', raw: (m) => `GET /v${m} HTTP/1.1\r\nHost: [::1]:80\r\n\r\n`, status: 200, upstream: one },
  { name: 'HTTP/1.0 without Host', raw: (m) => `GET /v${m} HTTP/1.0\r\n\r\n`, status: 200, upstream: one },

  // ---- Content-Length ------------------------------------------------------------------------
  { name: 'CL and TE', raw: (m) => `POST /v${m} HTTP/1.1\r\n${H(m)}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, status: 400, upstream: none },
  { name: 'TE and CL', raw: (m) => `POST /v${m} HTTP/1.1\r\n${H(m)}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n`, status: 400, upstream: none },
  { name: 'two differing CL fields', raw: (m) => `POST /v${m} HTTP/1.1\r\n${H(m)}Content-Length: 1\r\nContent-Length: 2\r\n\r\nab`, status: 400, upstream: none },
  { name: 'CL list of differing values', raw: (m) => `POST /v${m} HTTP/1.1\r\n${H(m)}Content-Length: 1, 2\r\n\r\nab`, status: 400, upstream: none },
  {
    name: 'CL list of equal values is sent on as one value',
    raw: (m) => `POST /v${m} HTTP/1.1\r\n${H(m)}Content-Length: 5, 5\r\n\r\nhello`,
    status: 200,
    upstream: one,
    check: (seen) => expect(seen.map((r) => [r.headers['content-length'], r.body.toString()])).toEqual([['5', 'hello']]),
  },
  { name: 'CL with a plus sign', raw: (m) => `POST /v${m} HTTP/1.1\r\n${H(m)}Content-Length: +5\r\n\r\nhello`, status: 400, upstream: none },
  { name: 'CL in hex', raw: (m) => `POST /v${m} HTTP/1.1\r\n${H(m)}Content-Length: 0x5\r\n\r\nhello`, status: 400, upstream: none },
  { name: 'negative CL', raw: (m) => `POST /v${m} HTTP/1.1\r\n${H(m)}Content-Length: -5\r\n\r\nhello`, status: 400, upstream: none },
  { name: 'CL with an underscore', raw: (m) => `POST /v${m} HTTP/1.1\r\n${H(m)}Content-Length: 1_0\r\n\r\nhello`, status: 400, upstream: none },
  { name: 'CL with a trailing comma', raw: (m) => `POST /v${m} HTTP/1.1\r\n${H(m)}Content-Length: 5,\r\n\r\nhello`, status: 400, upstream: none },
  { name: 'CL over max_request_body_bytes', raw: (m) => `POST /v${m} HTTP/1.1\r\n${H(m)}Content-Length: 100000\r\n\r\n`, status: 413, upstream: none },
  {
    name: 'CL shorter than what follows: the rest is the next request',
    raw: (m) => `POST /v${m} HTTP/1.1\r\n${H(m)}Content-Length: 5\r\n\r\nhelloGET /w${m} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`,
    status: 200,
    upstream: (m) => [`/v${m}`, `/w${m}`],
  },
  { name: 'CL on a GET', raw: (m) => `GET /v${m} HTTP/1.1\r\n${H(m)}Content-Length: 3\r\n\r\nabc`, status: 200, upstream: one },

  // ---- Transfer-Encoding and chunks ----------------------------------------------------------
  {
    name: 'chunked body',
    raw: (m) => `POST /v${m} HTTP/1.1\r\n${H(m)}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    status: 200,
    upstream: one,
    check: (seen) => expect(seen.map((r) => r.body.toString())).toEqual(['hello']),
  },
  { name: 'TE chunked twice', raw: (m) => `POST /v${m} HTTP/1.1\r\n${H(m)}Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n`, status: 400, upstream: none },
  { name: 'TE gzip without chunked', raw: (m) => `POST /v${m} HTTP/1.1\r\n${H(m)}Transfer-Encoding: gzip\r\n\r\n0\r\n\r\n`, status: 400, upstream: none },
  { name: 'TE chunked then gzip', raw: (m) => `POST /v${m} HTTP/1.1\r\n${H(m)}Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n`, status: 400, upstream: none },
  { name: 'TE xchunked', raw: (m) => `POST /v${m} HTTP/1.1\r\n${H(m)}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n`, status: 400, upstream: none },
  { name: 'TE with a vertical tab', raw: (m) => `POST /v${m} HTTP/1.1\r\n${H(m)}Transfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n`, status: 400, upstream: none },
  { name: 'TE chunked and a second TE field', raw: (m) => `POST /v${m} HTTP/1.1\r\n${H(m)}Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n0\r\n\r\n`, status: 400, upstream: none },
  { name: 'TE in HTTP/1.0', raw: (m) => `POST /v${m} HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, status: 400, upstream: none },
  { name: 'chunk size not hex', raw: (m) => `POST /v${m} HTTP/1.1\r\n${H(m)}Transfer-Encoding: chunked\r\n\r\ng\r\nx\r\n0\r\n\r\n`, status: 400, upstream: none },
  { name: 'chunk size with 0x', raw: (m) => `POST /v${m} HTTP/1.1\r\n${H(m)}Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n`, status: 400, upstream: none },
  { name: 'chunk size overflow', raw: (m) => `POST /v${m} HTTP/1.1\r\n${H(m)}Transfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n`, status: 400, upstream: none },
  { name: 'negative chunk size', raw: (m) => `POST /v${m} HTTP/1.1\r\n${H(m)}Transfer-Encoding: chunked\r\n\r\n-1\r\nx\r\n0\r\n\r\n`, status: 400, upstream: none },
  { name: 'chunk data without its CRLF', raw: (m) => `POST /v${m} HTTP/1.1\r\n${H(m)}Transfer-Encoding: chunked\r\n\r\n5\r\nhelloX0\r\n\r\n`, status: 400, upstream: none },
  { name: 'LF-only chunk lines', raw: (m) => `POST /v${m} HTTP/1.1\r\n${H(m)}Transfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n`, status: 400, upstream: none },
  { name: 'bare LF in a chunk extension', raw: (m) => `POST /v${m} HTTP/1.1\r\n${H(m)}Transfer-Encoding: chunked\r\n\r\n5;a\nb\r\nhello\r\n0\r\n\r\n`, status: 400, upstream: none },
  { name: 'obs-fold in a trailer', raw: (m) => `POST /v${m} HTTP/1.1\r\n${H(m)}Transfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\r\n 2\r\n\r\n`, status: 400, upstream: none },
  {
    name: 'a request after the last chunk is the next request',
    raw: (m) => `POST /v${m} HTTP/1.1\r\n${H(m)}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /w${m} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`,
    status: 200,
    upstream: (m) => [`/v${m}`, `/w${m}`],
  },
  {
    name: 'chunked body holding a request, over the body limit',
    raw: (m) => `POST /v${m} HTTP/1.1\r\n${H(m)}Transfer-Encoding: chunked\r\n\r\n${(2000).toString(16)}\r\n${'a'.repeat(2000)}\r\n0\r\n\r\n`,
    status: 413,
    upstream: none,
  },

  // ---- Connection ----------------------------------------------------------------------------
  {
    name: 'Connection: Content-Length does not strip the framing',
    raw: (m) => `POST /v${m} HTTP/1.1\r\n${H(m)}Connection: Content-Length\r\nContent-Length: ${smuggled(m).length}\r\n\r\n${smuggled(m)}`,
    status: 200,
    upstream: one,
    check: (seen) => expect(seen[0].body.toString()).toMatch(/^GET \/smuggled/),
  },
  {
    name: 'Connection: Transfer-Encoding does not strip the framing',
    raw: (m) => `POST /v${m} HTTP/1.1\r\n${H(m)}Connection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n${smuggled(m).length.toString(16)}\r\n${smuggled(m)}\r\n0\r\n\r\n`,
    status: 200,
    upstream: one,
  },
  {
    name: 'Connection: close, Content-Length',
    raw: (m) => `POST /v${m} HTTP/1.1\r\n${H(m)}Connection: close, Content-Length\r\nContent-Length: ${smuggled(m).length}\r\n\r\n${smuggled(m)}`,
    status: 200,
    upstream: one,
  },
  {
    name: 'Connection: Host keeps Host',
    raw: (m) => `GET /v${m} HTTP/1.1\r\n${H(m)}Connection: Host\r\n\r\n`,
    status: 200,
    upstream: one,
    check: (seen) => expect(seen[0].headers.host).toBe('a'),
  },
  {
    name: 'Connection names a field that is dropped',
    raw: (m) => `GET /v${m} HTTP/1.1\r\n${H(m)}Connection: x-secret\r\nX-Secret: 1\r\n\r\n`,
    status: 200,
    upstream: one,
    check: (seen) => expect(seen[0].headers['x-secret']).toBeUndefined(),
  },
  {
    name: 'Connection: close ends the connection: a request behind it is not served',
    raw: (m) => `GET /v${m} HTTP/1.1\r\n${H(m)}Connection: close\r\n\r\nGET /w${m} HTTP/1.1\r\nHost: a\r\n\r\n`,
    status: 200,
    upstream: one,
  },
  { name: 'Connection: upgrade without Upgrade', raw: (m) => `GET /v${m} HTTP/1.1\r\n${H(m)}Connection: upgrade\r\n\r\n`, status: 200, upstream: one },
  {
    name: 'Connection: keep-alive on HTTP/1.0 with a pipelined request',
    raw: (m) => `GET /v${m} HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /w${m} HTTP/1.0\r\n\r\n`,
    status: 200,
    upstream: (m) => [`/v${m}`, `/w${m}`],
  },

  // ---- Expect, upgrades and 1xx from the upstream ---------------------------------------------
  {
    name: 'Expect: 100-continue is answered by the proxy and not forwarded',
    raw: (m) => `POST /v${m} HTTP/1.1\r\n${H(m)}Expect: 100-continue\r\nContent-Length: 5\r\n\r\nhello`,
    status: 100,
    upstream: one,
    check: (seen) => expect(seen[0].headers.expect).toBeUndefined(),
  },
  {
    name: 'Expect: 100-continue to an upstream that never sends 100',
    raw: (m) => `POST /special/silent${m} HTTP/1.1\r\n${H(m)}Expect: 100-continue\r\nContent-Length: 5\r\n\r\nhello`,
    status: 100,
    upstream: none,
  },
  { name: 'Expect: 100-continue on a path with no route: no 100', raw: (m) => `POST /none${m} HTTP/1.1\r\nHost: nowhere.test\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n`, status: 404, upstream: none },
  { name: 'an unrequested 101 from the upstream', raw: (m) => `GET /special/101${m} HTTP/1.1\r\n${H(m)}\r\n`, status: 502, upstream: none },
  { name: '1,000 interim responses from the upstream', raw: (m) => `GET /special/100flood${m} HTTP/1.1\r\n${H(m)}\r\n`, status: 502, upstream: none },
  { name: '103 Early Hints passes before the response', raw: (m) => `GET /special/103${m} HTTP/1.1\r\n${H(m)}\r\n`, status: 103, upstream: none },
  { name: 'Upgrade: h2c to an HTTP/1 upstream is an ordinary request', raw: (m) => `GET /v${m} HTTP/1.1\r\n${H(m)}Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n`, status: 200, upstream: one },
  // The preface's first line starts HTTP/2, whose codec answers the rest with GOAWAY (no HTTP/1 status).
  { name: 'a broken HTTP/2 preface', raw: () => 'PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n', status: 0, upstream: none },
  { name: 'a request line with version HTTP/2.0 and another target', raw: (m) => `GET /v${m} HTTP/2.0\r\n${H(m)}\r\n`, status: 505, upstream: none },
];

let shuttle: ShuttleProcess;
let port: number;
let admin: string;
let victim: HttpUpstream;
let special: net.Server;
const specialSeen: string[] = [];

beforeAll(async () => {
  victim = await httpUpstream('victim');
  // Misbehaving upstream answers, chosen by path.
  special = net.createServer((s) => {
    s.on('error', () => {});
    s.once('data', (d) => {
      const line = d.toString('latin1').split('\r\n')[0];
      specialSeen.push(line);
      if (line.includes('/special/101')) s.end('HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: evil\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n');
      else if (line.includes('/special/100flood')) s.end('HTTP/1.1 100 Continue\r\n\r\n'.repeat(1000) + 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
      else if (line.includes('/special/103')) s.end('HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      else if (line.includes('/special/silent')) s.end('HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsilent');
    });
  });
  await new Promise<void>((r) => special.listen(0, '127.0.0.1', r));
  const specialAddress = `127.0.0.1:${(special.address() as net.AddressInfo).port}`;
  shuttle = startShuttle(testConfig({
    listeners: [{
      name: 'web',
      address: '127.0.0.1:0',
      protocol: 'http',
      access_log: false,
      http: { max_request_headers_kb: 4, max_headers: 20, max_request_body_bytes: 1000 },
      virtual_hosts: [
        { name: 'nowhere', domains: ['nowhere.test'], routes: [{ match: { prefix: '/only-this' }, direct_response: { status: 200 } }] },
        { name: 'all', domains: ['*'], routes: [{ match: { prefix: '/special/' }, cluster: 'special' }, { cluster: 'victim' }] },
      ],
    }],
    clusters: [{ name: 'victim', hosts: [victim.address] }, { name: 'special', hosts: [specialAddress] }],
  }), { threads: 2 });
  const ready = await shuttle.ready();
  port = ready.listeners.web.port;
  admin = ready.admin;
});

afterAll(async () => {
  await shuttle?.stop();
  await victim?.close();
  special?.close();
});

/**
 * Sends the bytes, then reads until the proxy closes, or until a response arrived and nothing
 * more came for a moment (a kept-alive connection). Returns the raw reply.
 */
function exchange(payload: string): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let text = '';
    let quiet: NodeJS.Timeout | undefined;
    const done = () => {
      clearTimeout(quiet);
      clearTimeout(cap);
      s.destroy();
      resolve(text);
    };
    const cap = setTimeout(done, 5_000);
    s.on('connect', () => s.write(payload, 'latin1'));
    s.on('data', (d) => {
      text += d.toString('latin1');
      clearTimeout(quiet);
      quiet = setTimeout(done, 300);
    });
    s.on('error', () => {});
    s.on('close', done);
  });
}

describe('hostile HTTP/1.1 input', () => {
  it(`has at least 60 vectors (${vectors.length})`, () => {
    expect(vectors.length).toBeGreaterThanOrEqual(60);
  });

  it('answers every vector as expected, and the upstream parses only the requests the client sent', async () => {
    type Outcome = { name: string; status: number; upstream: string[]; check: string };
    const results: Outcome[] = [];
    const expected: Outcome[] = [];
    const markers = vectors.map((_, i) => `-${i}-`);
    // Eight at a time: concurrent enough to be quick, few enough for a busy machine.
    for (let from = 0; from < vectors.length; from += 8) {
      await Promise.all(vectors.slice(from, from + 8).map(async (v, j) => {
        const m = markers[from + j];
        const reply = await exchange(v.raw(m));
        const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(reply)?.[1] ?? 0);
        const acceptable = Array.isArray(v.status) ? v.status : [v.status];
        results[from + j] = { name: v.name, status: acceptable.includes(status) ? acceptable[0] : status, upstream: [], check: 'ok' };
        expected[from + j] = { name: v.name, status: acceptable[0], upstream: v.upstream(m), check: 'ok' };
      }));
    }
    // A smuggled request would reach the upstream right behind its carrier: give it a moment.
    await new Promise((r) => setTimeout(r, 300));
    vectors.forEach((v, i) => {
      const m = markers[i];
      const seen = victim.requests.filter((r) => r.url.includes(m));
      results[i].upstream = seen.map((r) => r.url.replace(/^http:\/\/a/, ''));
      try {
        if (v.check && seen.length > 0) v.check(seen);
      } catch (err) {
        results[i].check = (err as Error).message;
      }
    });
    expect(results).toEqual(expected);
    expect(victim.requests.filter((r) => r.url.includes('smuggled'))).toEqual([]);
    expect(specialSeen.every((l) => !l.includes('smuggled'))).toBe(true);
  });

  it('no worker restarted', async () => {
    const workers = (await (await fetch(`${admin}/workers`)).json()) as { restarts: number };
    expect(workers.restarts).toBe(0);
  });
});
