import { describe, expect, it } from 'vitest';
import { ChunkedScanner } from '../../src/codecs/http1/chunked.ts';
import { RequestDecoder, ResponseDecoder } from '../../src/codecs/http1/decoder.ts';
import { HttpParseError } from '../../src/codecs/http1/errors.ts';
import type { RequestHead, ResponseHead } from '../../src/codecs/http1/head.ts';

function decodeRequests(raw: string | Buffer, opts: ConstructorParameters<typeof RequestDecoder>[1] = {}, split = 0) {
  const out: { head: RequestHead; body: string; trailers: string[] }[] = [];
  let cur: { head: RequestHead; body: string; trailers: string[] } | undefined;
  const d = new RequestDecoder({
    onHead: (head) => (cur = { head, body: '', trailers: [] }),
    onBody: (b) => (cur!.body += b.toString('latin1')),
    onComplete: (t) => {
      cur!.trailers = t;
      out.push(cur!);
      queueMicrotask(() => d.resume());
    },
  }, opts);
  const buf = Buffer.isBuffer(raw) ? raw : Buffer.from(raw, 'latin1');
  if (split > 0) for (let i = 0; i < buf.length; i += split) d.feed(buf.subarray(i, i + split));
  else d.feed(buf);
  return { out, d };
}

function errorOf(raw: string, opts = {}): { code: string; status: number } {
  try {
    decodeRequests(raw, opts);
  } catch (err) {
    if (err instanceof HttpParseError) return { code: err.code, status: err.status };
    throw err;
  }
  return { code: 'none', status: 0 };
}

describe('HTTP/1.1 request decoding', () => {
  it('parses a head and a Content-Length body, byte by byte too', () => {
    const raw = 'POST /a?b=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello';
    for (const split of [0, 1, 3]) {
      const { out } = decodeRequests(raw, {}, split);
      expect(out).toHaveLength(1);
      expect(out[0].head).toMatchObject({ method: 'POST', target: '/a?b=1', versionMinor: 1, contentLength: 5, chunked: false, keepAlive: true, host: 'x' });
      expect(out[0].head.headers).toEqual(['Host', 'x', 'Content-Length', '5', 'X-A', '1']);
      expect(out[0].body).toBe('hello');
    }
  });

  it('passes chunked bodies through raw and reads trailers', () => {
    const body = '5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n';
    const { out } = decodeRequests(`POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${body}`, {}, 2);
    expect(out[0].body).toBe(body);
    expect(out[0].trailers).toEqual(['X-Sum', '42']);
  });

  it('decodes pipelined requests one at a time, in order', async () => {
    const raw = 'GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\nPOST /3 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok';
    const { out, d } = decodeRequests(raw);
    expect(out.map((r) => r.head.target)).toEqual(['/1']);
    expect(d.paused).toBe(true);
    await new Promise((r) => setTimeout(r, 0));
    expect(out.map((r) => r.head.target)).toEqual(['/1', '/2', '/3']);
    expect(out[2].body).toBe('ok');
  });

  it('knows keep-alive and upgrade semantics', () => {
    expect(decodeRequests('GET / HTTP/1.0\r\n\r\n').out[0].head.keepAlive).toBe(false);
    expect(decodeRequests('GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n').out[0].head.keepAlive).toBe(true);
    expect(decodeRequests('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n').out[0].head.keepAlive).toBe(false);
    const up = decodeRequests('GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n').out[0].head;
    expect(up.upgrade).toBe('websocket');
    expect(decodeRequests('POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx').out[0].head.expectContinue).toBe(true);
  });

  it.each([
    ['Content-Length and Transfer-Encoding', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['differing duplicate Content-Length', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd'],
    ['Content-Length with a sign', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc'],
    ['invalid chunk size', 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n'],
    ['chunk size with 0x prefix', 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n'],
    ['chunk size too long', `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${'f'.repeat(17)}\r\n`],
    ['chunk data without CRLF', 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n'],
    ['Transfer-Encoding not ending in chunked', 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n'],
    ['unknown Transfer-Encoding', 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n'],
    ['Transfer-Encoding in HTTP/1.0', 'POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['obs-fold', 'GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n'],
    ['NUL in a header value', 'GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n'],
    ['CR in a header value', 'GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n'],
    ['bare LF line ending', 'GET / HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n'],
    ['space before the colon', 'GET / HTTP/1.1\r\nHost: x\r\nX-A : b\r\n\r\n'],
    ['bad request line', 'GET  / HTTP/1.1\r\nHost: x\r\n\r\n'],
    ['missing Host', 'GET / HTTP/1.1\r\n\r\n'],
    ['two Host headers', 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n'],
    ['control character in the target', 'GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n'],
  ])('rejects %s with 400', (_, raw) => {
    expect(errorOf(raw)).toEqual({ code: 'SHUTTLE_E_HTTP_BAD_REQUEST', status: 400 });
  });

  it('accepts identical duplicate Content-Length values', () => {
    expect(decodeRequests('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2, 2\r\n\r\nok').out[0].body).toBe('ok');
  });

  it('answers 431 for a header section or header count over the limit, 413 for a body over the limit, 505 for HTTP/2.0 text', () => {
    expect(errorOf(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(70_000)}\r\n\r\n`).status).toBe(431);
    expect(errorOf(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(70_000)}`).status).toBe(431); // before the end arrives
    expect(errorOf(`GET / HTTP/1.1\r\nHost: x\r\n${'X-H: 1\r\n'.repeat(101)}\r\n`).status).toBe(431);
    expect(errorOf('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world', { maxBodyBytes: 10 }).status).toBe(413);
    expect(errorOf('POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nb\r\nhello world\r\n0\r\n\r\n', { maxBodyBytes: 10 }).status).toBe(413);
    expect(errorOf('GET / HTTP/2.0\r\nHost: x\r\n\r\n').status).toBe(505);
  });
});

describe('HTTP/1.1 Connection tokens', () => {
  it('reads one usual token, several, and repeated fields, each message on its own', async () => {
    const head = (fields: string) => decodeRequests(`GET / HTTP/1.1\r\nHost: a\r\n${fields}\r\n`).out[0].head;
    const tokens = (fields: string) => [...head(fields).connection].sort();
    expect(tokens('Connection: keep-alive\r\n')).toEqual(['keep-alive']);
    expect(tokens('Connection: Keep-Alive\r\n')).toEqual(['keep-alive']);
    expect(head('Connection: close\r\n').keepAlive).toBe(false);
    // A second field adds to the first; the next message with one usual token has only that one.
    expect(tokens('Connection: keep-alive\r\nConnection: Upgrade, X-Trace\r\n')).toEqual(['keep-alive', 'upgrade', 'x-trace']);
    expect(tokens('Connection: close\r\nConnection: keep-alive\r\n')).toEqual(['close', 'keep-alive']);
    expect(tokens('Connection: keep-alive\r\n')).toEqual(['keep-alive']);
    expect(tokens('Connection: close\r\n')).toEqual(['close']);
    expect(tokens('Connection: upgrade\r\nUpgrade: websocket\r\n')).toEqual(['upgrade']);
    expect(tokens('Connection: Upgrade\r\n')).toEqual(['upgrade']);
    expect(tokens('')).toEqual([]);
  });
});

describe('HTTP/1.1 response decoding', () => {
  function decode(raw: string, method = 'GET') {
    const out: { head: ResponseHead; body: string }[] = [];
    let body = '';
    let head: ResponseHead | undefined;
    const d = new ResponseDecoder({
      onHead: (h) => {
        head = h;
        body = '';
      },
      onBody: (b) => (body += b.toString('latin1')),
      onComplete: () => {
        out.push({ head: head!, body });
        d.resume();
      },
    });
    d.expectResponseTo(method);
    d.feed(Buffer.from(raw, 'latin1'));
    return { out, d };
  }

  it('reads Content-Length, chunked and close-delimited bodies', () => {
    expect(decode('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok').out[0]).toMatchObject({ head: { status: 200, reason: 'OK' }, body: 'ok' });
    expect(decode('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n').out[0].body).toBe('2\r\nok\r\n0\r\n\r\n');
    const { out, d } = decode('HTTP/1.0 200 OK\r\n\r\nuntil close');
    expect(out).toHaveLength(0);
    expect(d.end()).toBe(true);
    expect(out[0].body).toBe('until close');
  });

  it('knows HEAD, 1xx, 204 and 304 responses have no body', () => {
    expect(decode('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n', 'HEAD').out[0].body).toBe('');
    expect(decode('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', 'HEAD').out).toHaveLength(1);
    expect(decode('HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n').out).toHaveLength(1);
    expect(decode('HTTP/1.1 204 No Content\r\n\r\n').out).toHaveLength(1);
    const { out } = decode('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx');
    expect(out.map((r) => r.head.status)).toEqual([100, 200]);
  });

  it('reports a cut-short body on end()', () => {
    const { d } = decode('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc');
    expect(d.end()).toBe(false);
  });
});

describe('chunked scanner', () => {
  it('reports payload ranges for decoding', () => {
    const s = new ChunkedScanner();
    const parts: string[] = [];
    const raw = Buffer.from('3\r\nabc\r\n2\r\nde\r\n0\r\n\r\nNEXT');
    const end = s.scan(raw, 0, raw.length, (b, f, t) => parts.push(b.toString('latin1', f, t)));
    expect(parts.join('')).toBe('abcde');
    expect(raw.subarray(end).toString()).toBe('NEXT');
    expect(s.payloadBytes).toBe(5);
  });
});
