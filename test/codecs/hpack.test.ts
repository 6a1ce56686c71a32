import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { HpackDecoder, HpackEncoder, HpackError } from '../../src/codecs/http2/hpack.ts';
import {
  EOS,
  HUFFMAN_BAD_PADDING,
  HUFFMAN_EOS,
  huffmanCode,
  huffmanDecode,
  huffmanEncode,
  huffmanEncodedLength,
  huffmanMaxDecodedLength,
  huffmanValidate,
} from '../../src/codecs/http2/huffman.ts';
import { STATIC_BY_NAME, STATIC_TABLE } from '../../src/codecs/http2/static-table.ts';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function decoder(maxTableSize = 4096, maxHeaderListSize = 64 * 1024, maxStringLength?: number) {
  return new HpackDecoder({ maxTableSize, maxHeaderListSize, maxStringLength });
}

function huffEncode(s: string): Buffer {
  const out = Buffer.alloc(huffmanEncodedLength(s));
  expect(huffmanEncode(s, out, 0)).toBe(out.length);
  return out;
}

function huffDecode(b: Uint8Array): string | number {
  const out = Buffer.alloc(huffmanMaxDecodedLength(b.length));
  const n = huffmanDecode(b, 0, b.length, out);
  return n < 0 ? n : out.toString('latin1', 0, n);
}

/** The error a block raises in a fresh decoder (or the given one). */
function decodeError(block: Buffer, d = decoder()): HpackError {
  try {
    d.decode(block);
  } catch (err) {
    expect(err).toBeInstanceOf(HpackError);
    expect((err as HpackError).code).toBe('COMPRESSION_ERROR');
    return err as HpackError;
  }
  throw new Error(`block ${block.toString('hex')} decoded without error`);
}

/** mulberry32: a small seeded PRNG, so failures replay. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  return { next, int, pick: <T>(xs: readonly T[]) => xs[int(xs.length)] };
}

describe('HPACK static table', () => {
  it('has the 61 entries of RFC 7541 Appendix A, found by name and by name/value', () => {
    expect(STATIC_TABLE).toHaveLength(61);
    expect(STATIC_TABLE[0]).toEqual([':authority', '']);
    expect(STATIC_TABLE[1]).toEqual([':method', 'GET']);
    expect(STATIC_TABLE[15]).toEqual(['accept-encoding', 'gzip, deflate']);
    expect(STATIC_TABLE[60]).toEqual(['www-authenticate', '']);
    expect(STATIC_BY_NAME.get(':status')!.index).toBe(8);
    expect(STATIC_BY_NAME.get(':status')!.values.get('404')).toBe(13);
    expect(STATIC_BY_NAME.get(':status')!.values.get('302')).toBeUndefined();
    expect(STATIC_BY_NAME.get('accept')!.values.get('')).toBe(19);
    expect(STATIC_BY_NAME.get('x-custom')).toBeUndefined();
  });
});

describe('HPACK Huffman code', () => {
  it('is the RFC 7541 Appendix B code, all 257 symbols', () => {
    // Fingerprint of "code/bits" for symbols 0…256, taken from the RFC's table.
    const table = Array.from({ length: 257 }, (_, s) => {
      const { code, bits } = huffmanCode(s);
      return `${code.toString(16)}/${bits}`;
    }).join(',');
    expect(createHash('sha256').update(table).digest('hex')).toBe('0b6b1ff3ab2ab4130a8fe7edf4c351269e928de04604ec5c0321a510d5a924c7');
    expect(huffmanCode(EOS)).toEqual({ code: 0x3fffffff, bits: 30 });
    expect(huffmanCode(0x61)).toEqual({ code: 0x3, bits: 5 }); // 'a'
    expect(huffmanCode(0)).toEqual({ code: 0x1ff8, bits: 13 });
  });

  it('encodes and decodes the strings of RFC 7541 Appendix C', () => {
    const cases: [string, string][] = [
      ['www.example.com', 'f1e3 c2e5 f23a 6ba0 ab90 f4ff'],
      ['no-cache', 'a8eb 1064 9cbf'],
      ['custom-key', '25a8 49e9 5ba9 7d7f'],
      ['custom-value', '25a8 49e9 5bb8 e8b4 bf'],
      ['302', '6402'],
      ['private', 'aec3 771a 4b'],
      ['Mon, 21 Oct 2013 20:13:21 GMT', 'd07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff'],
      ['https://www.example.com', '9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3'],
      ['gzip', '9bd9 ab'],
      [
        'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1',
        '94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07',
      ],
    ];
    for (const [text, encoded] of cases) {
      expect(huffEncode(text).toString('hex')).toBe(hex(encoded).toString('hex'));
      expect(huffDecode(hex(encoded))).toBe(text);
    }
    expect(huffDecode(Buffer.alloc(0))).toBe('');
  });

  it('round-trips all 256 octet values, alone and in random strings', () => {
    for (let c = 0; c < 256; c++) {
      const s = String.fromCharCode(c);
      expect(huffDecode(huffEncode(s))).toBe(s);
    }
    let all = '';
    for (let c = 0; c < 256; c++) all += String.fromCharCode(c);
    expect(huffDecode(huffEncode(all))).toBe(all);
    const r = prng(7);
    for (let i = 0; i < 500; i++) {
      let s = '';
      const len = r.int(64);
      for (let j = 0; j < len; j++) s += String.fromCharCode(r.next() < 0.8 ? 32 + r.int(95) : r.int(256));
      const enc = huffEncode(s);
      expect(huffDecode(enc)).toBe(s);
      expect(huffmanValidate(enc, 0, enc.length)).toBe(0);
    }
  });

  it('rejects EOS, padding over 7 bits and padding that is not all ones', () => {
    expect(huffDecode(hex('ffff ffff fc'))).toBe(HUFFMAN_EOS); // EOS then '?'
    expect(huffDecode(hex('ffff fffc'))).toBe(HUFFMAN_EOS); // exactly EOS (30 ones), 2 padding bits
    expect(huffDecode(hex('ff'))).toBe(HUFFMAN_BAD_PADDING); // 8 bits of padding
    expect(huffDecode(hex('1fff'))).toBe(HUFFMAN_BAD_PADDING); // 'a' then 11 bits of padding
    expect(huffDecode(hex('ff9f ffff ff'))).toBe(HUFFMAN_BAD_PADDING); // 29 bits of ones, not EOS
    expect(huffDecode(hex('00'))).toBe(HUFFMAN_BAD_PADDING); // '0' then padding of zeros
    expect(huffDecode(hex('18'))).toBe(HUFFMAN_BAD_PADDING); // '0' then 011
    expect(huffDecode(hex('1f'))).toBe('a'); // 'a' then 111: fine
    expect(huffmanValidate(hex('ff'), 0, 1)).toBe(HUFFMAN_BAD_PADDING);
    expect(huffmanValidate(hex('ffff fffc'), 0, 4)).toBe(HUFFMAN_EOS);
  });

  it('measures latin1 text and refuses anything wider', () => {
    expect(huffmanEncodedLength('')).toBe(0);
    expect(huffmanEncodedLength('www.example.com')).toBe(12);
    expect(() => huffmanEncodedLength('caf\u0100')).toThrow(RangeError);
    expect(() => huffmanEncodedLength('a\u010ab')).toThrow(RangeError); // would truncate to LF
  });
});

// RFC 7541 Appendix C. Tables are newest first, as [name, value, …].
const C3: [string, string[], string[], number][] = [
  [
    '8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d',
    [':method', 'GET', ':scheme', 'http', ':path', '/', ':authority', 'www.example.com'],
    [':authority', 'www.example.com'],
    57,
  ],
  [
    '8286 84be 5808 6e6f 2d63 6163 6865',
    [':method', 'GET', ':scheme', 'http', ':path', '/', ':authority', 'www.example.com', 'cache-control', 'no-cache'],
    ['cache-control', 'no-cache', ':authority', 'www.example.com'],
    110,
  ],
  [
    '8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65',
    [':method', 'GET', ':scheme', 'https', ':path', '/index.html', ':authority', 'www.example.com', 'custom-key', 'custom-value'],
    ['custom-key', 'custom-value', 'cache-control', 'no-cache', ':authority', 'www.example.com'],
    164,
  ],
];
const C4: typeof C3 = [
  ['8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff', C3[0][1], C3[0][2], 57],
  ['8286 84be 5886 a8eb 1064 9cbf', C3[1][1], C3[1][2], 110],
  ['8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf', C3[2][1], C3[2][2], 164],
];
const DATE1 = 'Mon, 21 Oct 2013 20:13:21 GMT';
const DATE2 = 'Mon, 21 Oct 2013 20:13:22 GMT';
const COOKIE = 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1';
const LOCATION = 'https://www.example.com';
const C5: typeof C3 = [
  [
    `4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
     2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d`,
    [':status', '302', 'cache-control', 'private', 'date', DATE1, 'location', LOCATION],
    ['location', LOCATION, 'date', DATE1, 'cache-control', 'private', ':status', '302'],
    222,
  ],
  [
    '4803 3330 37c1 c0bf',
    [':status', '307', 'cache-control', 'private', 'date', DATE1, 'location', LOCATION],
    [':status', '307', 'location', LOCATION, 'date', DATE1, 'cache-control', 'private'],
    222,
  ],
  [
    `88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
     54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
     5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31`,
    [':status', '200', 'cache-control', 'private', 'date', DATE2, 'location', LOCATION, 'content-encoding', 'gzip', 'set-cookie', COOKIE],
    ['set-cookie', COOKIE, 'content-encoding', 'gzip', 'date', DATE2],
    215,
  ],
];
const C6: typeof C3 = [
  [
    `4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
     2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3`,
    C5[0][1],
    C5[0][2],
    222,
  ],
  ['4883 640e ffc1 c0bf', C5[1][1], C5[1][2], 222],
  [
    `88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
     77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
     9587 3160 65c0 03ed 4ee5 b106 3d50 07`,
    C5[2][1],
    C5[2][2],
    215,
  ],
];

describe('HPACK decoder: RFC 7541 Appendix C', () => {
  it('C.2.1–C.2.4: literal with indexing, without indexing, never indexed, indexed', () => {
    let d = decoder();
    expect(d.decode(hex('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572'))).toEqual({
      headers: ['custom-key', 'custom-header'],
      overflow: false,
      neverIndexed: undefined,
    });
    expect(d.dynamicTable()).toEqual(['custom-key', 'custom-header']);
    expect(d.dynamicTableSize).toBe(55);

    d = decoder();
    expect(d.decode(hex('040c 2f73 616d 706c 652f 7061 7468'))).toMatchObject({ headers: [':path', '/sample/path'], overflow: false });
    expect(d.dynamicTable()).toEqual([]);

    d = decoder();
    expect(d.decode(hex('1008 7061 7373 776f 7264 0673 6563 7265 74'))).toEqual({
      headers: ['password', 'secret'],
      overflow: false,
      neverIndexed: ['password'],
    });
    expect(d.dynamicTable()).toEqual([]);

    d = decoder();
    expect(d.decode(hex('82')).headers).toEqual([':method', 'GET']);
    expect(d.dynamicTable()).toEqual([]);
  });

  for (const [name, series, tableSize] of [
    ['C.3 requests without Huffman', C3, 4096],
    ['C.4 requests with Huffman', C4, 4096],
    ['C.5 responses without Huffman, table of 256 (evictions)', C5, 256],
    ['C.6 responses with Huffman, table of 256 (evictions)', C6, 256],
  ] as const) {
    it(name, () => {
      const d = decoder(tableSize);
      for (const [block, headers, table, size] of series) {
        expect(d.decode(hex(block))).toEqual({ headers, overflow: false, neverIndexed: undefined });
        expect(d.dynamicTable()).toEqual(table);
        expect(d.dynamicTableSize).toBe(size);
      }
    });
  }

  it('decodes a block inside a larger buffer (start/end) and from a plain Uint8Array', () => {
    const block = hex(C4[0][0]);
    const framed = Buffer.concat([Buffer.from([1, 2, 3]), block, Buffer.from([0xff, 0xff])]);
    expect(decoder().decode(framed, 3, 3 + block.length).headers).toEqual(C4[0][1]);
    const plain = new Uint8Array(framed.buffer.slice(framed.byteOffset, framed.byteOffset + framed.length));
    expect(decoder().decode(plain.subarray(3, 3 + block.length)).headers).toEqual(C4[0][1]);
    expect(() => decoder().decode(block, 2, 1)).toThrow(RangeError);
    expect(() => decoder().decode(block, 0, block.length + 1)).toThrow(RangeError);
  });
});

describe('HPACK encoder', () => {
  it('reproduces the C.4 request blocks exactly (static and dynamic matches, Huffman, indexing)', () => {
    const e = new HpackEncoder();
    for (const [block, headers] of C4) expect(e.encode(headers).toString('hex')).toBe(hex(block).toString('hex'));
    expect(e.dynamicTable()).toEqual(C4[2][2]);
  });

  it('announces table size changes at the start of the next block, the lowest first (RFC 7541 §4.2)', () => {
    const e = new HpackEncoder();
    e.setPeerMaxTableSize(1337);
    // C.1.2: 1337 with a 5-bit prefix is 1f 9a 0a; 0x20 marks a size update.
    expect(e.encode([':method', 'GET']).toString('hex')).toBe('3f9a0a82');
    expect(e.encode([':method', 'GET']).toString('hex')).toBe('82');
    e.setPeerMaxTableSize(0);
    e.setPeerMaxTableSize(2000);
    expect(e.encode([]).toString('hex')).toBe('20' + '3fb10f'); // 0, then 2000
    e.setPeerMaxTableSize(100_000); // more than the encoder's own 4096
    expect(e.encode([]).toString('hex')).toBe('3fe11f'); // 4096
    e.setPeerMaxTableSize(100_000);
    expect(e.encode([]).length).toBe(0); // no change, nothing announced

    const small = new HpackEncoder({ maxTableSize: 256 });
    expect(small.encode([]).toString('hex')).toBe('3fe101'); // 256, below the 4096 default
  });

  it('uses never-indexed literals for credentials and short cookies, and for the names it is told', () => {
    const e = new HpackEncoder();
    const d = decoder();
    const headers = [
      'authorization', 'Bearer abc',
      'proxy-authorization', 'Basic xyz',
      'cookie', 'sid=1',
      'cookie', 'long-cookie=0123456789abcdef',
      'set-cookie', 'a=b',
      'x-secret', 'hush',
    ];
    const block = e.encode(headers, ['x-secret']);
    const out = d.decode(block);
    expect(out.headers).toEqual(headers);
    expect(out.neverIndexed).toEqual(['authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-secret']);
    expect(d.dynamicTable()).toEqual(['cookie', 'long-cookie=0123456789abcdef']);
    expect(block[0] & 0xf0).toBe(0x10); // authorization: 0001, name index 23
    // Repeating a credential sends it again as a literal, never as an index.
    const again = e.encode(['authorization', 'Bearer abc']);
    expect(again[0]).toBe(0x1f); // never indexed, name index 23 (15 + 8)
    expect(d.decode(again).neverIndexed).toEqual(['authorization']);
  });

  it('does not index a :path with a query, per-message values, or values over half the table', () => {
    const e = new HpackEncoder({ maxTableSize: 256 });
    const d = decoder(4096);
    const big = 'x'.repeat(100); // 100 + 6 + 32 > 128
    const headers = [
      ':path', '/api/items?id=123',
      ':path', '/pkg.Service/Method',
      'x-request-id', '5f0c6b7e-7a4e-4a53-9d2d-2f1d8f1a9c3e',
      'content-length', '42',
      'x-big', big,
      'x-small', 'v',
    ];
    expect(d.decode(e.encode(headers)).headers).toEqual(headers);
    expect(d.dynamicTable()).toEqual(['x-small', 'v', ':path', '/pkg.Service/Method']);
    expect(e.dynamicTable()).toEqual(d.dynamicTable());
    // The indexed ones now cost one byte each.
    expect(e.encode([':path', '/pkg.Service/Method', 'x-small', 'v']).length).toBe(2);
  });

  it('indexes date (the same value all through a second): a repeat costs one byte', () => {
    const e = new HpackEncoder();
    const d = decoder(4096);
    const response = [':status', '200', 'date', 'Fri, 04 Dec 2026 08:55:45 GMT'];
    expect(d.decode(e.encode(response)).headers).toEqual(response);
    const again = e.encode(response);
    expect(again.length).toBe(2);
    expect(d.decode(again).headers).toEqual(response);
  });

  it('Huffman-encodes a string only when that is shorter', () => {
    const e = new HpackEncoder();
    // Octets with long codes: Huffman would be ~3x longer, so the literal stays raw (H bit clear).
    const binary = '\u00fe\u00ff\u00fd\u00fc';
    const block = e.encode(['x-bin', binary]);
    // 0x40 (indexing, new name), name "x-bin" Huffman-coded, then the value length byte.
    const nameLength = block[1] & 0x7f;
    expect(block[1] & 0x80).toBe(0x80);
    expect(block[2 + nameLength]).toBe(binary.length); // H bit clear
    expect(decoder().decode(block).headers).toEqual(['x-bin', binary]);
  });

  it('rejects odd lists and non-latin1 text, and resynchronises the peer table after such an error', () => {
    const e = new HpackEncoder();
    const d = decoder();
    expect(() => e.encode([':method'])).toThrow(TypeError);
    d.decode(e.encode(['x-a', '1', 'x-b', '2']));
    // x-c enters the encoder's table before x-d fails: the block is never sent.
    expect(() => e.encode(['x-c', '3', 'x-d', 'snowman \u2603'])).toThrow(RangeError);
    const next = e.encode(['x-a', '1', 'x-c', '3']);
    expect(next.subarray(0, 4).toString('hex')).toBe('203fe11f'); // size 0, then 4096: both tables emptied
    expect(d.decode(next).headers).toEqual(['x-a', '1', 'x-c', '3']);
    expect(d.dynamicTable()).toEqual(e.dynamicTable());
  });
});

describe('HPACK encoder and decoder together', () => {
  const NAMES = [
    ':method', ':path', ':authority', ':status', 'accept', 'accept-encoding', 'user-agent', 'cookie', 'set-cookie',
    'authorization', 'content-type', 'content-length', 'date', 'x-request-id', 'x-trace', 'x-custom-1', 'x-custom-2',
    'grpc-status', 'x-\u00e9', 'cache-control', 'location', 'etag',
  ];
  const VALUES = ['GET', 'POST', '/', '/index.html', '200', '404', 'gzip, deflate', '', 'text/html', 'no-cache', 'example.com'];

  function randomValue(r: ReturnType<typeof prng>, maxLen: number): string {
    if (r.next() < 0.3) return r.pick(VALUES);
    let s = '';
    const len = r.int(maxLen);
    const binary = r.next() < 0.1;
    for (let i = 0; i < len; i++) s += String.fromCharCode(binary ? r.int(256) : 32 + r.int(95));
    return s;
  }

  for (const [tableSize, seed] of [
    [0, 1],
    [160, 2],
    [100, 3],
    [256, 4],
    [512, 5],
    [4096, 6],
  ] as const) {
    it(`round-trips random header lists over many blocks, table ${tableSize}, tables kept in step`, () => {
      const r = prng(seed);
      const e = new HpackEncoder({ maxTableSize: tableSize });
      const d = decoder(4096, 1 << 20);
      for (let block = 0; block < 400; block++) {
        const headers: string[] = [];
        const count = r.int(12);
        // A few header lists repeat earlier values, as real traffic does.
        for (let i = 0; i < count; i++) headers.push(r.pick(NAMES), randomValue(r, r.next() < 0.05 ? 300 : 40));
        const neverIndex = r.next() < 0.1 ? [r.pick(NAMES)] : undefined;
        const out = d.decode(e.encode(headers, neverIndex));
        expect(out.overflow).toBe(false);
        expect(out.headers).toEqual(headers);
        expect(d.dynamicTable()).toEqual(e.dynamicTable());
      }
    });
  }

  it('carries values far larger than the scratch buffers, Huffman-coded and raw', () => {
    const e = new HpackEncoder();
    const d = decoder(4096, 1 << 20);
    const text = 'abc'.repeat(40_000); // 120 KB, Huffman-coded
    let binary = '';
    for (let i = 0; i < 70_000; i++) binary += String.fromCharCode(0x80 + (i % 128)); // raw: long codes
    const headers = ['x-text', text, 'x-bin', binary, 'x-after', 'ok'];
    const block = e.encode(headers);
    expect(block.length).toBeLessThan(text.length + binary.length);
    expect(d.decode(block).headers).toEqual(headers);
    expect(d.decode(e.encode(['x-after', 'ok'])).headers).toEqual(['x-after', 'ok']); // indexed after all
  });

  it('gives a repeated head the bytes a fresh encoding gives (the block memo), tables in step', () => {
    const r = prng(7);
    const e = new HpackEncoder();
    // Reference: an encoder that never uses the memo (a neverIndex list, even naming no field of the
    // block, turns it off) and otherwise encodes alike.
    const reference = new HpackEncoder();
    const noMemo = ['x-not-in-any-block'];
    const d = decoder(4096, 1 << 20);
    let headers: string[] = [':status', '200', 'server', 'nginx', 'date', 'Mon, 30 Nov 2026 10:00:00 GMT', 'content-length', '24'];
    for (let block = 0; block < 2000; block++) {
      const roll = r.next();
      if (roll < 0.1) {
        // The same head with one value changed (a new second in date, another length, …).
        headers = headers.slice();
        const at = 2 * r.int(headers.length / 2) + 1;
        headers[at] = r.next() < 0.5 ? r.pick(VALUES) : randomValue(r, 30);
      } else if (roll < 0.15) {
        headers = headers.concat(r.pick(NAMES), randomValue(r, 20));
        if (headers.length > 24) headers = headers.slice(6);
      } else if (roll < 0.3) {
        headers = headers.map((x) => (x + ' ').slice(0, -1)); // equal strings, other objects
      } else if (roll < 0.33) {
        const size = r.pick([0, 64, 256, 4096]);
        e.setPeerMaxTableSize(size);
        reference.setPeerMaxTableSize(size);
        d.setMaxTableSize(size);
      }
      const bytes = e.encode(headers);
      expect(bytes.equals(reference.encode(headers, noMemo)), `block ${block}`).toBe(true);
      expect(d.decode(bytes).headers).toEqual(headers);
    }
    expect(d.dynamicTable()).toEqual(e.dynamicTable());
  });

  it('stays in step while both sides change the table size between blocks', () => {
    const r = prng(99);
    const e = new HpackEncoder({ maxTableSize: 8192 });
    const d = decoder(4096, 1 << 20);
    for (let block = 0; block < 300; block++) {
      if (r.next() < 0.1) {
        // We advertise a new SETTINGS_HEADER_TABLE_SIZE (sometimes twice, down then up, before the
        // peer's next block); the peer's encoder learns each, our decoder sees each acknowledged.
        const size = r.pick([0, 32, 100, 256, 1024, 4096, 8192]);
        const steps = r.next() < 0.3 ? [size, r.pick([0, 64, 2048]), size] : [size];
        for (const n of steps) {
          e.setPeerMaxTableSize(n);
          d.setMaxTableSize(n);
        }
      }
      const headers: string[] = [];
      for (let i = r.int(8); i > 0; i--) headers.push(r.pick(NAMES), randomValue(r, 60));
      expect(d.decode(e.encode(headers)).headers).toEqual(headers);
      expect(d.dynamicTable()).toEqual(e.dynamicTable());
    }
  });
});

describe('HPACK decoder against malformed input', () => {
  const cases: [string, string, RegExp][] = [
    ['a truncated integer', 'ff', /truncated integer/],
    ['a truncated multi-byte integer', 'ff 80', /truncated integer/],
    ['an overlong integer (6 continuation bytes)', 'ff 80 80 80 80 80 00', /too long/],
    ['an integer over 2^31-1', 'ff ff ff ff ff 0f', /out of range/],
    ['index 0', '80', /index 0/],
    ['an index beyond the static table with an empty dynamic table', 'be', /beyond the tables/],
    ['a name index beyond the tables', '7f 00 01 61', /beyond the tables/],
    ['a never-indexed name index beyond the tables', '1f 2f 01 61', /beyond the tables/],
    ['a truncated literal (no value)', '04', /truncated string/],
    ['a string length beyond the block', '04 05 61 62', /past the end/],
    ['a name length beyond the block', '40 7f 00 61', /past the end/],
    ['bad Huffman padding', '04 81 00', /padding/],
    ['Huffman padding over 7 bits', '04 82 1f ff', /padding/],
    ['EOS in a Huffman string', '04 84 ff ff ff ff', /EOS/],
    ['a size update above the limit', '3f e2 1f', /exceeds the limit/],
    ['a size update after the first field', '82 20', /after the first field/],
  ];
  for (const [what, block, message] of cases) {
    it(`rejects ${what}`, () => {
      expect(decodeError(hex(block)).message).toMatch(message);
    });
  }

  it('rejects a string over maxStringLength before reading it', () => {
    const d = decoder(4096, 64 * 1024, 16);
    // A length of 1128 declared, nothing behind it: the limit is what fails, not the missing bytes.
    expect(decodeError(hex('04 7f e9 07'), d).message).toMatch(/exceeds the limit 16/);
  });

  it('refuses every block after a failure: the table can no longer be trusted', () => {
    const d = decoder();
    decodeError(hex('80'), d);
    expect(() => d.decode(hex('82'))).toThrow(HpackError);
  });

  it('checks strings it does not keep (after an overflow) all the same', () => {
    const d = decoder(4096, 40);
    // :authority literal overflows 40, then a never-indexed literal with bad Huffman padding.
    expect(decodeError(hex('01 05 61 62 63 64 65 10 01 61 81 00'), d).message).toMatch(/padding/);
  });

  it('accepts size updates only up to the limit, and requires one after our limit went down', () => {
    const d = decoder(4096);
    expect(d.decode(hex('3fe11f 82')).headers).toEqual([':method', 'GET']); // update to 4096: fine
    d.decode(hex('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572')); // 55 octets
    d.setMaxTableSize(50);
    expect(d.dynamicTable()).toEqual([]); // evicted at once: the peer must go to ≤ 50 anyway
    expect(decodeError(hex('82'), decoderAfterShrink()).message).toMatch(/expected a dynamic table size update/);
    expect(decodeError(hex('3f20 82'), decoderAfterShrink()).message).toMatch(/exceeds the limit/); // 63 > 50
    expect(d.decode(hex('3f11 82')).headers).toEqual([':method', 'GET']); // 48: fine
    expect(d.decode(hex('82')).headers).toEqual([':method', 'GET']); // no longer required

    // Lowered then raised before the peer's next block: an update to at most the lowest is required.
    const d2 = decoder(4096);
    d2.setMaxTableSize(100);
    d2.setMaxTableSize(4096);
    expect(decodeError(hex('3fe11f 82'), d2).message).toMatch(/at most 100/);
    const d3 = decoder(4096);
    d3.setMaxTableSize(100);
    d3.setMaxTableSize(4096);
    expect(d3.decode(hex('3f45 3fe11f 82')).headers).toEqual([':method', 'GET']); // 100, then 4096

    function decoderAfterShrink() {
      const x = decoder(4096);
      x.setMaxTableSize(50);
      return x;
    }
  });
});

describe('HPACK decoder header list limit', () => {
  it('survives an HPACK bomb: one 4 KB entry referenced 10,000 times', () => {
    const d = decoder(8192, 16 * 1024);
    const value = 'v'.repeat(4000);
    const literal = Buffer.concat([hex('40 01 78 7f'), encodeLength(value.length - 127), Buffer.from(value)]); // x: vvv…
    const refs = Buffer.alloc(10_000, 0xbe); // index 62, the new entry
    const block = Buffer.concat([literal, refs]);
    expect(block.length).toBeLessThan(15_000);
    const out = d.decode(block);
    expect(out.overflow).toBe(true);
    expect(out.headers).toEqual([]);
    expect(out.neverIndexed).toBeUndefined();
    expect(d.dynamicTable()).toEqual(['x', value]);
    // The connection goes on: the next block refers to the entry that came in with the bomb.
    expect(d.decode(hex('be')).headers).toEqual(['x', value]);

    function encodeLength(n: number): Buffer {
      const bytes: number[] = [];
      while (n >= 128) {
        bytes.push((n & 0x7f) | 0x80);
        n >>>= 7;
      }
      bytes.push(n);
      return Buffer.from(bytes);
    }
  });

  it('counts name + value + 32 per field (RFC 9113 §6.5.2) and keeps the tables in step past the limit', () => {
    const e = new HpackEncoder();
    const headers = ['x-a', 'aaaa', 'x-b', 'bbbb']; // 39 each
    const exact = decoder(4096, 78);
    expect(exact.decode(e.encode(headers))).toMatchObject({ headers, overflow: false });

    const e2 = new HpackEncoder();
    const d = decoder(4096, 77);
    const over = d.decode(e2.encode(headers));
    expect(over).toEqual({ headers: [], overflow: true, neverIndexed: undefined });
    // Both fields were indexed while over the limit; the next block uses them.
    expect(d.dynamicTable()).toEqual(e2.dynamicTable());
    expect(d.decode(e2.encode(['x-b', 'bbbb'])).headers).toEqual(['x-b', 'bbbb']);
  });
});

describe('HPACK state across processes (connection migration)', () => {
  it('a decoder imported from another goes on decoding what the peer encodes against the old table', () => {
    const peer = new HpackEncoder();
    const before = decoder();
    const fields = ['x-token', 'a'.repeat(60), 'x-user', 'alice', 'cookie', 'c'.repeat(30)];
    for (let i = 0; i < 5; i++) before.decode(peer.encode(fields));
    const moved = decoder();
    moved.importState(before.exportState());
    expect(moved.dynamicTable()).toEqual(before.dynamicTable());
    expect(moved.dynamicTableSize).toBe(before.dynamicTableSize);
    // The peer now sends indices into the table it thinks we have.
    const block = peer.encode(fields);
    expect(block.length).toBeLessThan(10);
    expect(moved.decode(block).headers).toEqual(fields);
  });

  it('an encoder that does not know the peer table empties it with a size update first', () => {
    const old = new HpackEncoder();
    const peer = decoder();
    const fields = ['x-token', 'b'.repeat(60)];
    peer.decode(old.encode(fields));
    expect(peer.dynamicTable().length).toBe(2);
    const fresh = new HpackEncoder();
    fresh.forgetPeerTable();
    const block = fresh.encode(fields);
    expect(block[0]).toBe(0x20); // size update to 0: the peer's table empties
    expect(peer.decode(block).headers).toEqual(fields);
    expect(peer.dynamicTable()).toEqual(fields); // and both tables start again together
  });
});
