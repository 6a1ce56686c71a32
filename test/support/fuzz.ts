/**
 * Shared pieces of the property tests (test/codecs/*.property.test.ts) and the end-to-end fuzz run
 * (test/fuzz.e2e.test.ts): the seed, a small seeded PRNG, byte mutations (as fast-check values and
 * as PRNG draws) and splitting bytes into reads.
 *
 * Every run is reproducible: the seed is fixed (FUZZ_SEED in the environment overrides it) and
 * printed in the test names and in the fuzz run's summary line.
 */
import fc from 'fast-check';

/** The seed of every property test and of the fuzz run; `FUZZ_SEED=123 npx vitest run …` replays another. */
export const FUZZ_SEED = Number(process.env.FUZZ_SEED ?? 20260717) | 0;

// Arrays and strings reach toward their maxLength (fast-check's default size keeps them under
// ~10 elements). A global setting: each vitest test file runs in its own process.
fc.configureGlobal({ ...fc.readConfigureGlobal(), baseSize: 'medium' });

/** fast-check settings: fixed seed, modest run counts, no wall-clock dependence. */
export function fcParams<Ts = never>(numRuns: number, extra: Partial<fc.Parameters<Ts>> = {}): fc.Parameters<Ts> {
  return { seed: FUZZ_SEED, numRuns, ...extra };
}

/** mulberry32: a small seeded PRNG, so a failing e2e input replays from the printed seed. */
export interface Rng {
  next(): number;
  int(n: number): number;
  range(min: number, max: number): number;
  chance(p: number): boolean;
  pick<T>(xs: readonly T[]): T;
  bytes(n: number): Buffer;
}

export function prng(seed: number): Rng {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  return {
    next,
    int,
    range: (min, max) => min + int(max - min + 1),
    chance: (p) => next() < p,
    pick: (xs) => xs[int(xs.length)],
    bytes: (n) => {
      const b = Buffer.allocUnsafe(n);
      for (let i = 0; i < n; i++) b[i] = int(256);
      return b;
    },
  };
}

// ── Mutations ────────────────────────────────────────────────────────────────────────────────

/** Bytes that mean something to one of the codecs: line ends, separators, digits, magic bytes, sign bits. */
export const INTERESTING_BYTES = [0x00, 0x01, 0x02, 0x09, 0x0a, 0x0d, 0x20, 0x2c, 0x3a, 0x3b, 0x30, 0x31, 0x39, 0x46, 0x66, 0x7f, 0x80, 0xa0, 0xbb, 0xda, 0xfe, 0xff];

/** Byte strings worth inserting: HTTP framing pieces and boundary integers. */
export const INTERESTING_INSERTS: readonly Buffer[] = [
  '\r\n', '\n', '\r', '\r\n\r\n', ' ', '\t', ':', ';', ',', '0\r\n\r\n', 'Content-Length: 0\r\n', 'Content-Length: 5\r\n',
  'Transfer-Encoding: chunked\r\n', 'Host: a\r\n', 'Connection: close\r\n', 'ffffffffffffffff', '\x00',
  '\x7f\xff\xff\xff', '\xff\xff\xff\xff', '\x00\x00\x00\x00', '\x80\x00\x00\x00', '\x00\x00\x80\x00',
].map((s) => Buffer.from(s, 'latin1'));

export type Mutation =
  | { op: 'flip'; at: number; mask: number }
  | { op: 'set'; at: number; byte: number }
  | { op: 'insert'; at: number; bytes: Buffer }
  | { op: 'delete'; at: number; len: number }
  | { op: 'duplicate'; at: number; len: number }
  | { op: 'truncate'; at: number };

/** Positions are taken modulo the length at the time the mutation applies. */
export function mutate(input: Buffer, ops: readonly Mutation[]): Buffer {
  let b = Buffer.from(input);
  for (const m of ops) {
    const n = b.length;
    switch (m.op) {
      case 'flip':
        if (n > 0) b[m.at % n] ^= m.mask || 1;
        break;
      case 'set':
        if (n > 0) b[m.at % n] = m.byte;
        break;
      case 'insert': {
        const at = m.at % (n + 1);
        b = Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)]);
        break;
      }
      case 'delete': {
        const at = m.at % (n + 1);
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.len)]);
        break;
      }
      case 'duplicate': {
        const at = m.at % (n + 1);
        const piece = b.subarray(at, at + m.len);
        b = Buffer.concat([b.subarray(0, at + piece.length), piece, b.subarray(at + piece.length)]);
        break;
      }
      case 'truncate':
        b = b.subarray(0, m.at % (n + 1));
        break;
    }
  }
  return b;
}

const anyBytes = (max: number) => fc.uint8Array({ minLength: 1, maxLength: max }).map((u) => Buffer.from(u));

/** Bytes of any length up to `max`, lengths spread over the whole range. */
export const bytesArb = (min: number, max: number): fc.Arbitrary<Buffer> =>
  fc.uint8Array({ minLength: min, maxLength: max, size: 'max' }).map((u) => Buffer.from(u));

/** 1–`max` mutations, as fast-check values (they shrink to fewer and smaller edits). */
export function mutationsArb(max = 4, extraInserts: readonly Buffer[] = []): fc.Arbitrary<Mutation[]> {
  const inserts = [...INTERESTING_INSERTS, ...extraInserts];
  const at = fc.nat();
  const mutation: fc.Arbitrary<Mutation> = fc.oneof(
    fc.record({ op: fc.constant('flip' as const), at, mask: fc.integer({ min: 1, max: 255 }) }),
    fc.record({ op: fc.constant('set' as const), at, byte: fc.oneof(fc.constantFrom(...INTERESTING_BYTES), fc.integer({ min: 0, max: 255 })) }),
    fc.record({ op: fc.constant('insert' as const), at, bytes: fc.oneof(fc.constantFrom(...inserts), anyBytes(8)) }),
    fc.record({ op: fc.constant('delete' as const), at, len: fc.integer({ min: 1, max: 16 }) }),
    fc.record({ op: fc.constant('duplicate' as const), at, len: fc.integer({ min: 1, max: 64 }) }),
    fc.record({ op: fc.constant('truncate' as const), at }),
  );
  return fc.array(mutation, { minLength: 1, maxLength: max });
}

/** The same mutations drawn from a PRNG (the e2e run, where fast-check does not drive the loop). */
export function randomMutations(rng: Rng, max = 4, extraInserts: readonly Buffer[] = []): Mutation[] {
  const inserts = [...INTERESTING_INSERTS, ...extraInserts];
  const out: Mutation[] = [];
  for (let k = 1 + rng.int(max); k > 0; k--) {
    const at = rng.int(1 << 30);
    switch (rng.int(6)) {
      case 0: out.push({ op: 'flip', at, mask: 1 << rng.int(8) }); break;
      case 1: out.push({ op: 'set', at, byte: rng.chance(0.7) ? rng.pick(INTERESTING_BYTES) : rng.int(256) }); break;
      case 2: out.push({ op: 'insert', at, bytes: rng.chance(0.7) ? rng.pick(inserts) : rng.bytes(1 + rng.int(8)) }); break;
      case 3: out.push({ op: 'delete', at, len: 1 + rng.int(16) }); break;
      case 4: out.push({ op: 'duplicate', at, len: 1 + rng.int(64) }); break;
      default: out.push({ op: 'truncate', at }); break;
    }
  }
  return out;
}

// ── Splitting into reads ─────────────────────────────────────────────────────────────────────

/** Cut points (any numbers; taken modulo the length, sorted, deduplicated). */
export const cutsArb = (max = 12): fc.Arbitrary<number[]> => fc.array(fc.nat(), { maxLength: max });

/** The bytes as consecutive reads, cut at the given points; every read is its own memory. */
export function splitAt(bytes: Buffer, cuts: readonly number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => (bytes.length === 0 ? 0 : c % bytes.length)))].filter((c) => c > 0).sort((x, y) => x - y);
  const out: Buffer[] = [];
  let from = 0;
  for (const p of points) {
    out.push(Buffer.from(bytes.subarray(from, p)));
    from = p;
  }
  out.push(Buffer.from(bytes.subarray(from)));
  return out;
}

/** Random-sized pieces from a PRNG: mostly small, sometimes one byte, sometimes the rest. */
export function randomPieces(rng: Rng, bytes: Buffer, maxPieces = 8): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  for (let k = 1; at < bytes.length; k++) {
    const rest = bytes.length - at;
    const n = k >= maxPieces || rng.chance(0.3) ? rest : rng.chance(0.3) ? 1 : 1 + rng.int(Math.max(1, Math.min(rest, 64)));
    out.push(bytes.subarray(at, at + n));
    at += n;
  }
  return out;
}
