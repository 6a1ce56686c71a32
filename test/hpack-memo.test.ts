/**
 * HpackDecoder remembers the last literal value per static name (peers such as nginx send the same
 * literals in every response): a repeat decodes to the same string without decoding it again, and
 * any change of octets (a new date, raw instead of Huffman, another length) is decoded afresh.
 * And the encoder and decoder stay in step over long random sequences of repeated and interleaved
 * lists, with evictions, never-indexed fields and a size update on the way.
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

  it('encoder and decoder stay in step: repeated and interleaved lists, evictions, never-indexed fields, a size update', () => {
    const pool: string[][] = [
      [':method', 'GET', ':path', '/', ':scheme', 'http', ':authority', 'a.example', 'user-agent', 'h2load'],
      [':status', '200', 'server', 'nginx/1.22.1', 'date', 'Fri, 04 Dec 2026 06:30:01 GMT', 'content-length', '24'],
      [':status', '200', 'server', 'nginx/1.22.1', 'date', 'Fri, 04 Dec 2026 06:30:02 GMT', 'content-length', '24'],
      [':method', 'POST', ':path', '/svc.Greeter/Hello', ':scheme', 'http', ':authority', 'b.example', 'content-type', 'application/grpc', 'te', 'trailers'],
      [':status', '404', 'x-big', 'y'.repeat(1500)],
      [':status', '200', 'authorization', 'secret', 'cookie', 'k=v'],
    ];
    let seed = 42;
    const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) % n);
    for (const tableSize of [4096, 256]) {
      const e = new HpackEncoder();
      const d = new HpackDecoder({ maxTableSize: 4096, maxHeaderListSize: 1 << 20 });
      if (tableSize !== 4096) e.setPeerMaxTableSize(tableSize);
      let repeats = 0;
      let last: Buffer | undefined;
      let lastList: string[] | undefined;
      for (let i = 0; i < 3000; i++) {
        // Mostly repeats (as on a proxied connection), sometimes another list.
        const list = rand(4) === 0 || lastList === undefined ? pool[rand(pool.length)] : lastList;
        const neverIndex = list[0] === ':status' && rand(5) === 0 ? ['server'] : undefined;
        const block = e.encode([...list], neverIndex);
        expect(d.decode(block).headers).toEqual(list);
        if (lastList === list && last !== undefined && block.equals(last)) repeats++;
        last = block;
        lastList = list;
        if (i === 1500 && tableSize === 4096) e.setPeerMaxTableSize(2048); // a size update mid-way
      }
      expect(repeats).toBeGreaterThan(500); // (fully indexed repeats: the same bytes)
    }
  });
});
