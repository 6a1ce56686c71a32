/**
 * Property-based tests of HPACK (src/codecs/http2/hpack.ts), with fast-check:
 *
 * - decode(encode(headers)) = headers over sequences of blocks, with table size changes between
 *   them, never-indexed names, static and dynamic table hits, Huffman and raw strings of any
 *   latin1 octets; the encoder's and decoder's dynamic tables stay in step after every block;
 * - the same header list cut into arbitrary consecutive blocks decodes to the same list; a block
 *   decodes the same alone and from inside a larger buffer (start/end), from a Buffer or a plain
 *   Uint8Array; a proxy hop (decode, re-encode with the never-indexed names) keeps both the
 *   headers and which ones are never indexed;
 * - the header list limit: a list over maxHeaderListSize is reported as overflow (never a partial
 *   list), one within it is returned whole, and the tables stay in step either way;
 * - no input (random bytes, mutated valid blocks, one after another on one decoder) makes the
 *   decoder throw anything but HpackError; after one, every further block is refused; a decoded
 *   list is never over the limit and the table never over its size. Text the encoder cannot send
 *   (non-latin1) throws a RangeError, and the next block puts both tables back in step.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HpackDecoder, HpackEncoder, HpackError, type HpackDecodeResult } from '../../src/codecs/http2/hpack.ts';
import { STATIC_TABLE } from '../../src/codecs/http2/static-table.ts';
import { bytesArb, fcParams, FUZZ_SEED, mutate, mutationsArb } from '../support/fuzz.ts';

// ── Header lists ─────────────────────────────────────────────────────────────────────────────

const latin1 = (lo: number, hi: number) => fc.integer({ min: lo, max: hi }).map((c) => String.fromCharCode(c));
const text = (unit: fc.Arbitrary<string>, maxLength: number) => fc.string({ unit, maxLength });
const STATIC_NAMES = [...new Set(STATIC_TABLE.map(([n]) => n))];
const STATIC_VALUES = [...new Set(STATIC_TABLE.map(([, v]) => v))];
const SENSITIVE = ['authorization', 'proxy-authorization', 'cookie', 'set-cookie'];

const nameArb = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...STATIC_NAMES) },
  { weight: 1, arbitrary: fc.constantFrom(...SENSITIVE, 'x-request-id', 'content-length', ':path') },
  { weight: 3, arbitrary: text(fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789-_.:'.split('')), 20).filter((n) => n.length > 0) },
  // Names are lower case by contract; any other latin1 octet is carried as it is.
  { weight: 1, arbitrary: text(latin1(0x00, 0xff).filter((c) => c.toLowerCase() === c), 12) },
);
const valueArb = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...STATIC_VALUES) },
  { weight: 4, arbitrary: text(latin1(0x20, 0x7e), 40) },
  { weight: 1, arbitrary: text(latin1(0x00, 0xff), 40) },
  // Long strings: multi-byte length prefixes, scratch buffers grown.
  { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 120, max: 3000 }), latin1(0x00, 0xff)).map(([n, c]) => c.repeat(n)) },
);
const headerList = fc.array(fc.tuple(nameArb, valueArb), { maxLength: 14 }).map((pairs) => pairs.flat());
/** A few lists that repeat fields, as real traffic does (dynamic table hits). */
const trafficLists = fc.tuple(fc.array(headerList, { minLength: 1, maxLength: 4 }), fc.array(fc.nat(), { minLength: 1, maxLength: 10 }))
  .map(([lists, picks]) => picks.map((p) => lists[p % lists.length]));

type Op = { op: 'block'; headers: string[]; neverIndex: string[] | undefined } | { op: 'size'; sizes: number[] };
const tableSize = fc.oneof(fc.constantFrom(0, 32, 64, 100, 256, 1024, 4096, 8192), fc.integer({ min: 0, max: 10_000 }));
const opsArb: fc.Arbitrary<Op[]> = fc.array(fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant('block' as const), headers: headerList, neverIndex: fc.option(fc.array(nameArb, { maxLength: 2 }), { nil: undefined }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('size' as const), sizes: fc.array(tableSize, { minLength: 1, maxLength: 3 }) }) },
), { minLength: 1, maxLength: 20 });

function listSize(headers: string[]): number {
  let n = 0;
  for (let i = 0; i < headers.length; i += 2) n += headers[i].length + headers[i + 1].length + 32;
  return n;
}

/** A connection's two ends: our decoder and the peer's encoder, table sizes changed together. */
function pair(encoderMax = 4096, maxHeaderListSize = 1 << 24) {
  return { e: new HpackEncoder({ maxTableSize: encoderMax }), d: new HpackDecoder({ maxTableSize: 4096, maxHeaderListSize }) };
}

function setSize(p: ReturnType<typeof pair>, n: number): void {
  p.e.setPeerMaxTableSize(n);
  p.d.setMaxTableSize(n);
}

/** Decodes, and lets only an HpackError out as `undefined`. */
function tryDecode(d: HpackDecoder, block: Uint8Array, start?: number, end?: number): HpackDecodeResult | undefined {
  try {
    return d.decode(block, start, end);
  } catch (err) {
    if (err instanceof HpackError) {
      expect(err.code).toBe('COMPRESSION_ERROR');
      return undefined;
    }
    throw err;
  }
}

// ── Properties ───────────────────────────────────────────────────────────────────────────────

describe(`HPACK properties (fast-check seed ${FUZZ_SEED})`, () => {
  it('decodes what it encodes, block after block, through table size changes; the tables stay in step', () => {
    fc.assert(fc.property(fc.constantFrom(0, 100, 256, 4096, 8192), opsArb, (encoderMax, ops) => {
      const p = pair(encoderMax);
      let current = 4096;
      for (const o of ops) {
        if (o.op === 'size') {
          for (const n of o.sizes) setSize(p, n);
          current = o.sizes[o.sizes.length - 1];
          continue;
        }
        const out = p.d.decode(p.e.encode(o.headers, o.neverIndex));
        expect(out.overflow).toBe(false);
        expect(out.headers).toEqual(o.headers);
        for (const name of o.neverIndex ?? []) if (o.headers.some((h, i) => i % 2 === 0 && h === name)) expect(out.neverIndexed).toContain(name);
        expect(p.d.dynamicTable()).toEqual(p.e.dynamicTable());
        expect(p.d.dynamicTableSize).toBeLessThanOrEqual(Math.min(encoderMax, current));
      }
    }), fcParams(400));
  });

  it('decodes repeated traffic (dynamic table hits) the same', () => {
    fc.assert(fc.property(fc.constantFrom(64, 256, 4096), trafficLists, (encoderMax, lists) => {
      const p = pair(encoderMax);
      for (const headers of lists) {
        expect(p.d.decode(p.e.encode(headers)).headers).toEqual(headers);
        expect(p.d.dynamicTable()).toEqual(p.e.dynamicTable());
      }
    }), fcParams(300));
  });

  it('decodes a header list cut into arbitrary consecutive blocks to the same list', () => {
    fc.assert(fc.property(headerList, fc.array(fc.nat(), { maxLength: 8 }), (headers, cuts) => {
      const fields = headers.length / 2;
      const points = [...new Set(cuts.map((c) => (fields === 0 ? 0 : c % (fields + 1))))].sort((a, b) => a - b);
      const p = pair();
      const out: string[] = [];
      let from = 0;
      for (const at of [...points, fields]) {
        out.push(...p.d.decode(p.e.encode(headers.slice(2 * from, 2 * at))).headers);
        from = Math.max(from, at);
      }
      expect(out).toEqual(headers);
      expect(p.d.dynamicTable()).toEqual(p.e.dynamicTable());
    }), fcParams(400));
  });

  it('decodes a block the same alone and from inside a larger buffer, Buffer or Uint8Array', () => {
    fc.assert(fc.property(trafficLists, bytesArb(0, 20), bytesArb(0, 20), (lists, prefix, suffix) => {
      const e = new HpackEncoder();
      const alone = new HpackDecoder({ maxTableSize: 4096, maxHeaderListSize: 1 << 24 });
      const inside = new HpackDecoder({ maxTableSize: 4096, maxHeaderListSize: 1 << 24 });
      const plain = new HpackDecoder({ maxTableSize: 4096, maxHeaderListSize: 1 << 24 });
      for (const headers of lists) {
        const block = e.encode(headers);
        const big = Buffer.concat([prefix, block, suffix]);
        const u8 = new Uint8Array(big.buffer.slice(big.byteOffset, big.byteOffset + big.length));
        const a = alone.decode(block);
        expect(inside.decode(big, prefix.length, prefix.length + block.length)).toEqual(a);
        expect(plain.decode(u8, prefix.length, prefix.length + block.length)).toEqual(a);
        expect(a.headers).toEqual(headers);
      }
      expect(inside.dynamicTable()).toEqual(alone.dynamicTable());
      expect(plain.dynamicTable()).toEqual(alone.dynamicTable());
    }), fcParams(300));
  });

  it('keeps headers and never-indexed names through a proxy hop (decode, re-encode with neverIndexed, decode)', () => {
    fc.assert(fc.property(trafficLists, fc.array(nameArb, { maxLength: 2 }), (lists, neverIndex) => {
      const client = pair();
      const upstream = pair();
      for (const headers of lists) {
        const first = client.d.decode(client.e.encode(headers, neverIndex));
        const second = upstream.d.decode(upstream.e.encode(first.headers, first.neverIndexed));
        expect(second.headers).toEqual(headers);
        expect(new Set(second.neverIndexed ?? [])).toEqual(new Set(first.neverIndexed ?? []));
        expect(upstream.d.dynamicTable()).toEqual(upstream.e.dynamicTable());
      }
    }), fcParams(300));
  });

  it('reports a list over maxHeaderListSize as overflow (never a partial list), one within it whole; tables in step', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 600 }), trafficLists, (limit, lists) => {
      const p = pair(4096, limit);
      for (const headers of lists) {
        const out = p.d.decode(p.e.encode(headers));
        if (listSize(headers) > limit) {
          expect(out.overflow).toBe(true);
          expect(out.headers).toEqual([]);
          expect(out.neverIndexed).toBeUndefined();
        } else {
          expect(out.overflow).toBe(false);
          expect(out.headers).toEqual(headers);
        }
        expect(p.d.dynamicTable()).toEqual(p.e.dynamicTable());
      }
    }), fcParams(400));
  });

  it('throws nothing but HpackError for arbitrary blocks in a row; refuses all after one; stays within its limits', () => {
    const config = fc.record({ maxTableSize: fc.oneof(fc.constantFrom(0, 4096), fc.integer({ min: 0, max: 65536 })), maxHeaderListSize: fc.oneof(fc.constant(16384), fc.integer({ min: 0, max: 100_000 })), maxStringLength: fc.option(fc.integer({ min: 0, max: 70_000 }), { nil: undefined }) });
    // Blocks that open like HPACK: indexed fields, literals with names, size updates.
    const block = fc.oneof(bytesArb(0, 300), fc.array(fc.oneof(bytesArb(1, 6), fc.constantFrom(...['82', '84', '87', '40', '00', '10', '3fe11f', '20', 'be', '7f00', '0f2f', '8a', 'ff']).map((h) => Buffer.from(h, 'hex'))), { maxLength: 40 }).map((xs) => Buffer.concat(xs)));
    fc.assert(fc.property(config, fc.array(block, { minLength: 1, maxLength: 6 }), fc.option(fc.integer({ min: 0, max: 8192 }), { nil: undefined }), (opts, blocks, newSize) => {
      const d = new HpackDecoder(opts);
      if (newSize !== undefined) d.setMaxTableSize(newSize);
      let failed = false;
      for (const b of blocks) {
        const out = tryDecode(d, b);
        if (failed) expect(out).toBeUndefined(); // the table can no longer be trusted
        if (out === undefined) {
          failed = true;
          continue;
        }
        if (out.overflow) expect(out.headers).toEqual([]);
        else expect(listSize(out.headers)).toBeLessThanOrEqual(opts.maxHeaderListSize);
        expect(d.dynamicTableSize).toBeLessThanOrEqual(newSize === undefined ? opts.maxTableSize : Math.max(newSize, 0));
      }
    }), fcParams(2000));
  });

  it('throws nothing but HpackError for mutated valid blocks, and stays within its limits', () => {
    fc.assert(fc.property(trafficLists, fc.nat(), mutationsArb(4), fc.integer({ min: 0, max: 20_000 }), (lists, which, ops, limit) => {
      const e = new HpackEncoder();
      const blocks = lists.map((h) => e.encode(h));
      const k = which % blocks.length;
      const d = new HpackDecoder({ maxTableSize: 4096, maxHeaderListSize: limit });
      for (let i = 0; i < blocks.length; i++) {
        const out = tryDecode(d, i === k ? mutate(blocks[i], ops) : blocks[i]);
        if (out === undefined) break;
        if (!out.overflow) expect(listSize(out.headers)).toBeLessThanOrEqual(limit);
        expect(d.dynamicTableSize).toBeLessThanOrEqual(4096);
      }
    }), fcParams(1500));
  });

  it('refuses text it cannot send (non-latin1) with a RangeError only, and puts both tables back in step at the next block', () => {
    const wide = fc.oneof(text(latin1(0x20, 0x7e), 10), fc.constantFrom('snowman \u2603', '\u0100', 'caf\u00e9', '\ud83d\ude00'));
    const lists = fc.array(fc.array(fc.tuple(fc.oneof(nameArb, fc.constant('x-\u0101')), fc.oneof(valueArb, wide)), { maxLength: 8 }).map((x) => x.flat()), { minLength: 1, maxLength: 8 });
    fc.assert(fc.property(lists, (blocks) => {
      const p = pair();
      for (const headers of blocks) {
        let block: Buffer;
        try {
          block = p.e.encode(headers);
        } catch (err) {
          expect(err).toBeInstanceOf(RangeError);
          expect(headers.some((s) => /[^\x00-\xff]/.test(s))).toBe(true);
          continue;
        }
        expect(p.d.decode(block).headers).toEqual(headers);
        expect(p.d.dynamicTable()).toEqual(p.e.dynamicTable());
      }
    }), fcParams(400));
  });
});
