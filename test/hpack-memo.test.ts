/**
 * HpackDecoder remembers the last literal value per static name (peers such as nginx send the same
 * literals in every response): a repeat decodes to the same string without decoding it again, and
 * any change of octets (a new date, raw instead of Huffman, another length) is decoded afresh.
 */
import { describe, expect, it } from 'vitest';
import { HpackDecoder, HpackEncoder } from '../src/codecs/http2/hpack.ts';

// nginx 1.22's response head as it sends it on every stream (captured): literals with incremental
// indexing for server, date, content-type and content-length.
const NGINX_HEAD = Buffer.from('887689aa6355e580ae212e1f6196c361be94034a5f29141004e28072e05ab8d3ea62d1bf5f87497ca58ae819aa5c023234', 'hex');

describe('HPACK literal memo', () => {
  it('decodes a repeated block to the same strings, and a changed value afresh', () => {
    const d = new HpackDecoder({ maxTableSize: 4096, maxHeaderListSize: 65536 });
    const first = d.decode(NGINX_HEAD).headers;
    expect(first).toEqual([':status', '200', 'server', 'nginx/1.22.1', 'date', first[5], 'content-type', 'text/plain', 'content-length', '24']);
    expect(first[5]).toMatch(/ GMT$/);
    const second = d.decode(NGINX_HEAD).headers;
    expect(second).toEqual(first);

    // Another encoder's blocks to the same decoder: other dates, raw and Huffman forms, lengths.
    const e = new HpackEncoder();
    for (const date of ['Fri, 04 Dec 2026 06:30:01 GMT', 'Fri, 04 Dec 2026 06:30:02 GMT', 'x', 'Fri, 04 Dec 2026 06:30:02 GMT']) {
      const block = e.encode([':status', '200', 'date', date, 'content-length', String(date.length)]);
      expect(d.decode(block).headers).toEqual([':status', '200', 'date', date, 'content-length', String(date.length)]);
    }
    // The remembered date is now another: the nginx block decodes as before.
    expect(d.decode(NGINX_HEAD).headers).toEqual(first);
  });

  it('still rejects a malformed literal after a good one with the same name', () => {
    const d = new HpackDecoder({ maxTableSize: 4096, maxHeaderListSize: 65536 });
    d.decode(NGINX_HEAD);
    // date (static 33), literal without indexing, Huffman, 2 octets of all-ones = EOS padding > 7 bits.
    expect(() => d.decode(Buffer.from([0x0f, 0x12, 0x82, 0xff, 0xff]))).toThrow(/Huffman|EOS/);
  });
});
