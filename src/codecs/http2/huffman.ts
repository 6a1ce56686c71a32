/**
 * The HPACK Huffman code (RFC 7541 Appendix B): a fixed, canonical prefix code over the 256 octets
 * plus EOS (256), 5 to 30 bits a symbol, tuned for header text.
 *
 * Only the code lengths are written down: the code is canonical (codes of one length are
 * consecutive, in symbol order), so the codes themselves follow from the lengths, and a wrong
 * length would not produce a complete code — the tree check at load time would throw.
 *
 * Decoding is a byte-at-a-time state machine, not a bit-by-bit tree walk. A state is an inner node
 * of the code tree (there are exactly 256: bits read since the last symbol), and one table lookup
 * per input byte gives the next state, the 0–2 symbols completed on the way, whether the string may
 * end there (RFC 7541 §5.2: padding of at most 7 bits, all ones, i.e. a strict prefix of EOS), and
 * whether EOS was decoded (always an error). The table is 256 × 256 entries of 32 bits (256 KiB),
 * built once at module load (a few milliseconds, composed from a 4-bit table); header text keeps to
 * a few shallow states, so the part that is hot in cache is small.
 *
 * Encoding packs codes into a 32-bit accumulator and writes whole bytes, padding the last one with
 * the high bits of EOS (ones).
 */

/** Bit length of each symbol's code, 0–255 then EOS. */
const CODE_LENGTHS = Uint8Array.of(
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, //   0–15
  28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, //  16–31
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, //          32–47  ' ' … '/'
  5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, //               48–63  '0' … '?'
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, //                 64–79  '@' … 'O'
  7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, //              80–95  'P' … '_'
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, //                 96–111 '`' … 'o'
  6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, //            112–127 'p' … DEL
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, // 128–143
  24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, // 144–159
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, // 160–175
  21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, // 176–191
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, // 192–207
  19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, // 208–223
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, // 224–239
  26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, // 240–255
  30, //                                                              EOS
);

export const EOS = 256;

/** Code of each symbol, right-aligned in CODE_LENGTHS[sym] bits. */
const CODES = canonicalCodes(CODE_LENGTHS);

function canonicalCodes(lengths: Uint8Array): Uint32Array {
  const symbols = Array.from(lengths.keys()).sort((a, b) => lengths[a] - lengths[b] || a - b);
  const codes = new Uint32Array(lengths.length);
  let code = 0;
  for (let k = 0; k < symbols.length; k++) {
    if (k > 0) code = (code + 1) * 2 ** (lengths[symbols[k]] - lengths[symbols[k - 1]]);
    codes[symbols[k]] = code;
  }
  return codes;
}

/** The code bits and length of a symbol (0–256), for tests and diagnostics. */
export function huffmanCode(symbol: number): { code: number; bits: number } {
  return { code: CODES[symbol], bits: CODE_LENGTHS[symbol] };
}

// ── Decoding table ───────────────────────────────────────────────────────────────────────────

const SYM2_SHIFT = 8;
const STATE_SHIFT = 16;
const COUNT_SHIFT = 24;
/** The string may end after this byte (the bits since the last symbol are ≤ 7 ones). */
const ACCEPT = 1 << 26;
/** EOS was decoded in this byte. The highest flag, so `entry >= FAIL` tests it. */
const FAIL = 1 << 27;

const DECODE = buildDecodeTable();

function buildDecodeTable(): Uint32Array {
  // The code tree: inner nodes 0 (root) … 255; children[node * 2 + bit] is an inner node (> 0)
  // or a leaf, -(symbol + 1). 0 marks a missing child (the root is nobody's child).
  const children = new Int16Array(512);
  const depth = new Uint8Array(256);
  const allOnes = new Uint8Array(256);
  allOnes[0] = 1;
  let nodes = 1;
  for (let sym = 0; sym <= EOS; sym++) {
    const code = CODES[sym];
    const len = CODE_LENGTHS[sym];
    let node = 0;
    for (let b = len - 1; b > 0; b--) {
      const bit = (code >>> b) & 1;
      let child = children[node * 2 + bit];
      if (child === 0) {
        if (nodes === 256) throw new Error('HPACK Huffman table is not a prefix code');
        child = nodes++;
        children[node * 2 + bit] = child;
        depth[child] = depth[node] + 1;
        allOnes[child] = allOnes[node] & bit;
      } else if (child < 0) throw new Error('HPACK Huffman table is not a prefix code');
      node = child;
    }
    if (children[node * 2 + (code & 1)] !== 0) throw new Error('HPACK Huffman table is not a prefix code');
    children[node * 2 + (code & 1)] = -(sym + 1);
  }
  if (nodes !== 256 || children.includes(0)) throw new Error('HPACK Huffman table is not a complete code');

  // First per nibble (at most one symbol fits in 4 bits), then each byte as two nibbles.
  // nibbles[state * 16 + nibble]: next node | symbol << 8 | NIBBLE_SYMBOL if one ended there; -1: EOS.
  const NIBBLE_SYMBOL = 1 << 17;
  const nibbles = new Int32Array(256 * 16);
  for (let state = 0; state < 256; state++) {
    for (let nibble = 0; nibble < 16; nibble++) {
      let node = state;
      let out = 0;
      for (let b = 3; b >= 0; b--) {
        const child = children[node * 2 + ((nibble >>> b) & 1)];
        if (child > 0) {
          node = child;
        } else if (child === -(EOS + 1)) {
          out = -1;
          break;
        } else {
          out = ((-child - 1) << 8) | NIBBLE_SYMBOL;
          node = 0;
        }
      }
      nibbles[state * 16 + nibble] = out < 0 ? -1 : out | node;
    }
  }

  const table = new Uint32Array(256 * 256);
  for (let state = 0; state < 256; state++) {
    for (let byte = 0; byte < 256; byte++) {
      const high = nibbles[state * 16 + (byte >>> 4)];
      const low = high < 0 ? -1 : nibbles[(high & 0xff) * 16 + (byte & 15)];
      if (low < 0) {
        table[(state << 8) | byte] = FAIL;
        continue;
      }
      let count = 0;
      let syms = 0;
      if ((high & NIBBLE_SYMBOL) !== 0) {
        syms = (high >>> 8) & 0xff;
        count++;
      }
      if ((low & NIBBLE_SYMBOL) !== 0) {
        syms |= ((low >>> 8) & 0xff) << (count * SYM2_SHIFT);
        count++;
      }
      const node = low & 0xff;
      const accept = node === 0 || (allOnes[node] === 1 && depth[node] <= 7);
      table[(state << 8) | byte] = syms | (node << STATE_SHIFT) | (count << COUNT_SHIFT) | (accept ? ACCEPT : 0);
    }
  }
  return table;
}

// ── Decoding ─────────────────────────────────────────────────────────────────────────────────

/** huffmanDecode() results below zero. */
export const HUFFMAN_EOS = -1;
export const HUFFMAN_BAD_PADDING = -2;

/** Most octets `encodedLength` Huffman bytes can decode to (every code is at least 5 bits). */
export function huffmanMaxDecodedLength(encodedLength: number): number {
  return Math.floor((encodedLength * 8) / 5);
}

/**
 * Decodes src[start, end) into out (which must hold huffmanMaxDecodedLength(end - start) bytes).
 * Returns the decoded length, or HUFFMAN_EOS / HUFFMAN_BAD_PADDING.
 */
export function huffmanDecode(src: Uint8Array, start: number, end: number, out: Uint8Array): number {
  let state = 0;
  let n = 0;
  let entry = ACCEPT; // the empty string is valid
  for (let i = start; i < end; i++) {
    entry = DECODE[(state << 8) | src[i]];
    if (entry >= FAIL) return HUFFMAN_EOS;
    const count = (entry >>> COUNT_SHIFT) & 3;
    if (count !== 0) {
      out[n++] = entry & 0xff;
      if (count === 2) out[n++] = (entry >>> SYM2_SHIFT) & 0xff;
    }
    state = (entry >>> STATE_SHIFT) & 0xff;
  }
  return (entry & ACCEPT) !== 0 ? n : HUFFMAN_BAD_PADDING;
}

/** Checks src[start, end) as huffmanDecode() would, without producing output: 0 or an error code. */
export function huffmanValidate(src: Uint8Array, start: number, end: number): number {
  let state = 0;
  let entry = ACCEPT;
  for (let i = start; i < end; i++) {
    entry = DECODE[(state << 8) | src[i]];
    if (entry >= FAIL) return HUFFMAN_EOS;
    state = (entry >>> STATE_SHIFT) & 0xff;
  }
  return (entry & ACCEPT) !== 0 ? 0 : HUFFMAN_BAD_PADDING;
}

// ── Encoding ─────────────────────────────────────────────────────────────────────────────────

/**
 * Bytes the Huffman encoding of a latin1 string takes. Throws a RangeError for a char above 0xFF:
 * such a string cannot be sent as octets, and truncating it would forge other octets (U+010A → LF).
 */
export function huffmanEncodedLength(s: string): number {
  let bits = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff) throw new RangeError(`header text is not latin1 (char ${c} at ${i})`);
    bits += CODE_LENGTHS[c];
  }
  return (bits + 7) >>> 3;
}

/**
 * Writes the Huffman encoding of s at out[at…] and returns the offset after it. Room is the
 * caller's business: huffmanEncodedLength(s) bytes, or 4 per char (no code is over 30 bits)
 * without measuring first. Throws a RangeError for a char above 0xFF, as huffmanEncodedLength().
 */
export function huffmanEncode(s: string, out: Uint8Array, at: number): number {
  let acc = 0; // pending bits, right-aligned; fewer than 8 between symbols
  let nbits = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff) throw new RangeError(`header text is not latin1 (char ${c} at ${i})`);
    let code = CODES[c];
    let len = CODE_LENGTHS[c];
    if (nbits + len > 31) {
      // A long code (rare bytes) would overflow 31 bits: emit its top part first.
      const high = len - 16;
      acc = (acc << high) | (code >>> 16);
      nbits += high;
      while (nbits >= 8) {
        nbits -= 8;
        out[at++] = acc >>> nbits;
      }
      acc &= (1 << nbits) - 1;
      code &= 0xffff;
      len = 16;
    }
    acc = (acc << len) | code;
    nbits += len;
    while (nbits >= 8) {
      nbits -= 8;
      out[at++] = acc >>> nbits;
    }
    acc &= (1 << nbits) - 1;
  }
  if (nbits > 0) out[at++] = (acc << (8 - nbits)) | (0xff >>> nbits);
  return at;
}
