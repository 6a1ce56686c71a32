/**
 * HPACK (RFC 7541): header compression for Shuttle's HTTP/2 codec. One decoder per connection for
 * what the peer sends, one encoder for what we send; each side keeps a dynamic table that must stay
 * exactly in step with its counterpart across the peer, so every table change here follows the RFC
 * to the letter (entry size = name + value + 32 octets, eviction oldest first, before insertion).
 *
 * Headers are flat [name, value, name, value, …] arrays of latin1 strings: one char per octet, so a
 * string's length is its size on the wire and nothing is ever transcoded.
 *
 * Decoding faces hostile peers, so every quantity read from the wire is bounded before use:
 * integers (at most 2^31 - 1 and 5 continuation bytes), string lengths (maxStringLength, and the
 * block's end) checked before anything is allocated, indices checked against both tables, Huffman
 * strings checked for EOS and for padding that is not ≤ 7 one-bits. Any of these is a
 * COMPRESSION_ERROR: the connection's tables can no longer be trusted, so the decoder refuses
 * further blocks. A header list over maxHeaderListSize is not a protocol error: the block is still
 * decoded to the end (the dynamic table must follow the peer's), but nothing more is kept, so a
 * "bomb" (a small block naming one large table entry thousands of times) costs no memory.
 *
 * The decoder does not validate field names or values (upper case, empty names, pseudo-header
 * order, CR/LF/NUL in values): RFC 9113 §8.2 makes those the HTTP/2 layer's checks.
 *
 * The encoder uses the dynamic table for fields likely to repeat, finds entries through maps keyed by
 * name then value (no key strings built per field), and writes into one reusable scratch buffer that
 * is copied out once per block.
 */
import {
  HUFFMAN_EOS,
  huffmanDecode,
  huffmanEncode,
  huffmanEncodedLength,
  huffmanMaxDecodedLength,
  huffmanValidate,
} from './huffman.ts';
import { STATIC_BY_NAME, STATIC_NAMES, STATIC_TABLE_LENGTH, STATIC_VALUES } from './static-table.ts';

type Latin1Buffer = Buffer & {
  latin1Slice(start: number, end: number): string;
  latin1Write(s: string, offset: number): number;
};

/** RFC 7541 §4.1: a table entry's size counts 32 octets of overhead besides its name and value. */
const ENTRY_OVERHEAD = 32;
/** The SETTINGS_HEADER_TABLE_SIZE both sides assume until told otherwise (RFC 9113 §6.5.2). */
export const DEFAULT_HEADER_TABLE_SIZE = 4096;
/** Largest integer accepted from the wire. */
const MAX_INT = 0x7fffffff;
/** Scratch buffers that grew past this (one huge header) are dropped after use, not kept per connection. */
const SCRATCH_KEEP = 64 * 1024;

const EMPTY = Buffer.alloc(0) as Latin1Buffer;

export class HpackError extends Error {
  readonly code: 'COMPRESSION_ERROR' = 'COMPRESSION_ERROR';
  constructor(message: string) {
    super(message);
    this.name = 'HpackError';
  }
}

// ── Dynamic table ─────────────────────────────────────────────────────────────────────────────

/**
 * The dynamic table as a ring of names and values. Entries are numbered by insertion (the first
 * ever is id 1), and entry id lives at slot (id - 1) & mask, so the ring needs no shifting: the
 * newest entry (HPACK index 62, dynamic index 1) is id `inserted`, dynamic index i is id
 * `inserted - i + 1`.
 */
class DynamicTable {
  private names: string[];
  private values: string[];
  private mask: number;
  /** Entries ever added: the newest entry's id. */
  inserted = 0;
  count = 0;
  /** Sum of entry sizes (name + value + 32). */
  size = 0;
  maxSize: number;
  /** Bumped by every add and size change: the table is the same while this is. */
  changes = 0;

  constructor(maxSize: number) {
    this.maxSize = maxSize;
    this.names = new Array<string>(16).fill('');
    this.values = new Array<string>(16).fill('');
    this.mask = 15;
  }

  /** Name of the entry at dynamic index i (1 = newest); the caller has checked 1 ≤ i ≤ count. */
  nameAt(i: number): string {
    return this.names[(this.inserted - i) & this.mask];
  }

  valueAt(i: number): string {
    return this.values[(this.inserted - i) & this.mask];
  }

  /** Adds an entry (RFC 7541 §4.4): evicts until it fits; one larger than the table empties it. */
  add(name: string, value: string): boolean {
    this.changes++;
    const entrySize = name.length + value.length + ENTRY_OVERHEAD;
    if (entrySize > this.maxSize) {
      while (this.count > 0) this.evictOldest();
      return false;
    }
    while (this.size + entrySize > this.maxSize) this.evictOldest();
    if (this.count === this.names.length) this.grow();
    const slot = this.inserted & this.mask;
    this.names[slot] = name;
    this.values[slot] = value;
    this.inserted++;
    this.count++;
    this.size += entrySize;
    return true;
  }

  /** A new maximum (RFC 7541 §4.3): evicts until the entries fit. */
  setMaxSize(maxSize: number): void {
    this.changes++;
    this.maxSize = maxSize;
    while (this.size > maxSize) this.evictOldest();
  }

  /** Called with each entry as it leaves the table. */
  protected evicted(_id: number, _name: string, _value: string): void {}

  private evictOldest(): void {
    const id = this.inserted - this.count + 1;
    const slot = (id - 1) & this.mask;
    const name = this.names[slot];
    const value = this.values[slot];
    this.names[slot] = ''; // let the strings go
    this.values[slot] = '';
    this.count--;
    this.size -= name.length + value.length + ENTRY_OVERHEAD;
    this.evicted(id, name, value);
  }

  private grow(): void {
    const capacity = this.names.length * 2;
    const names = new Array<string>(capacity).fill('');
    const values = new Array<string>(capacity).fill('');
    const mask = capacity - 1;
    for (let id = this.inserted - this.count + 1; id <= this.inserted; id++) {
      names[(id - 1) & mask] = this.names[(id - 1) & this.mask];
      values[(id - 1) & mask] = this.values[(id - 1) & this.mask];
    }
    this.names = names;
    this.values = values;
    this.mask = mask;
  }
}

interface NameEntries {
  /** Id of the newest entry with this name. */
  newest: number;
  /** value → id of the newest entry with this name and value. */
  values: Map<string, number>;
}

/** The encoder's table also finds entries: name → value → newest id, kept in step with eviction. */
class EncoderTable extends DynamicTable {
  readonly byName = new Map<string, NameEntries>();

  /** Dynamic index (1 = newest) of a live entry id. */
  indexOf(id: number): number {
    return this.inserted - id + 1;
  }

  override add(name: string, value: string): boolean {
    if (!super.add(name, value)) return false;
    const id = this.inserted;
    const entries = this.byName.get(name);
    if (entries === undefined) {
      this.byName.set(name, { newest: id, values: new Map([[value, id]]) });
    } else {
      entries.newest = id;
      entries.values.set(value, id);
    }
    return true;
  }

  protected override evicted(id: number, name: string, value: string): void {
    const entries = this.byName.get(name)!;
    // Eviction goes oldest first: once the newest entry of a name goes, all of that name are gone.
    if (entries.newest === id) this.byName.delete(name);
    else if (entries.values.get(value) === id) entries.values.delete(value);
  }
}

function checkSize(what: string, n: number): void {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`${what} must be an integer 0…2^32-1, got ${n}`);
}

// ── Decoder ──────────────────────────────────────────────────────────────────────────────────

export interface HpackDecoderOptions {
  /**
   * The dynamic table size the peer's encoder may use: our SETTINGS_HEADER_TABLE_SIZE once the
   * peer has it. Until our SETTINGS are acknowledged the peer assumes 4096 (RFC 9113 §6.5.2), so a
   * connection starts with 4096 and calls setMaxTableSize() on the acknowledgement; a smaller
   * table than the peer's would lose entries it still refers to.
   */
  maxTableSize: number;
  /** Our SETTINGS_MAX_HEADER_LIST_SIZE: sum of name + value + 32 over the fields (RFC 9113 §6.5.2). */
  maxHeaderListSize: number;
  /**
   * Longest string accepted, in octets on the wire; a longer one is a COMPRESSION_ERROR, refused
   * before anything is allocated. Default: the largest of 64 KiB, maxHeaderListSize and
   * maxTableSize — a field just over the list limit is the stream's problem (overflow, a 431), not
   * a reason to drop the connection, and a table-sized entry is always legitimate.
   */
  maxStringLength?: number;
}

export interface HpackDecodeResult {
  /** [name, value, …]; empty when overflow is set (a partial list must never be mistaken for the request). */
  headers: string[];
  /** The list exceeded maxHeaderListSize: answer the stream with 431 / RST_STREAM, keep the connection. */
  overflow: boolean;
  /**
   * Names of fields the peer sent as never-indexed literals (RFC 7541 §6.2.3), undefined when none:
   * an intermediary must forward them the same way, so pass this to HpackEncoder.encode().
   */
  neverIndexed: string[] | undefined;
}

export interface HpackDecoderState {
  /** [name, value, …], oldest first. */
  entries: string[];
  tableMaxSize: number;
  maxTableSize: number;
  requiredUpdate: number;
}

/** Literal values remembered per static name (HpackDecoder.valueOf): prefix byte + octets. */
const MEMO_BYTES = 48;

/**
 * `span` octets of `a` from 0 equal those of `b` from `at`. Why a loop: the spans are at most
 * MEMO_BYTES, and Buffer#compare with offsets validates five arguments and crosses into C++ —
 * several times the cost of the comparison itself (3% of the HTTP/2 proxy's CPU in a profile).
 */
function sameOctets(a: Uint8Array, b: Uint8Array, at: number, span: number): boolean {
  for (let i = 0; i < span; i++) if (a[i] !== b[at + i]) return false;
  return true;
}
interface ValueMemo {
  readonly bytes: (Buffer | undefined)[];
  readonly span: Uint8Array;
  readonly value: string[];
}

export class HpackDecoder {
  private readonly table: DynamicTable;
  private maxTableSize: number;
  private readonly maxHeaderListSize: number;
  private readonly maxStringLength: number;
  /**
   * The smallest size our setting fell to (below the table's) since the last block, or -1: the
   * next block must open with a size update no larger (RFC 7541 §4.2).
   */
  private requiredUpdate = -1;
  private failed = false;
  /** The block being decoded, and the read position in it. */
  private buf: Latin1Buffer = EMPTY;
  private pos = 0;
  private end = 0;
  /** Huffman output, grown on demand. */
  private scratch: Latin1Buffer = Buffer.allocUnsafe(256) as Latin1Buffer;
  /** The last literal value seen per static-table name (see valueOf); made on first use. */
  private memo: ValueMemo | undefined;

  constructor(opts: HpackDecoderOptions) {
    checkSize('maxTableSize', opts.maxTableSize);
    if (!(opts.maxHeaderListSize >= 0)) throw new RangeError(`maxHeaderListSize must be ≥ 0, got ${opts.maxHeaderListSize}`);
    this.maxTableSize = opts.maxTableSize;
    this.maxHeaderListSize = opts.maxHeaderListSize;
    this.maxStringLength = opts.maxStringLength ?? Math.max(64 * 1024, opts.maxHeaderListSize, opts.maxTableSize);
    this.table = new DynamicTable(opts.maxTableSize);
  }

  /** Entries in the dynamic table, newest first, as [name, value, …] (for tests and diagnostics). */
  dynamicTable(): string[] {
    const out: string[] = [];
    for (let i = 1; i <= this.table.count; i++) out.push(this.table.nameAt(i), this.table.valueAt(i));
    return out;
  }

  /** Size of the dynamic table in RFC 7541 terms (for tests and diagnostics). */
  get dynamicTableSize(): number {
    return this.table.size;
  }

  /**
   * The table's state, to go on decoding in another process (connection migration): what the
   * peer's encoder believes our table holds must stay exactly so.
   */
  exportState(): HpackDecoderState {
    const entries: string[] = [];
    for (let i = this.table.count; i >= 1; i--) entries.push(this.table.nameAt(i), this.table.valueAt(i));
    return { entries, tableMaxSize: this.table.maxSize, maxTableSize: this.maxTableSize, requiredUpdate: this.requiredUpdate };
  }

  /** A fresh decoder takes over exportState()'s table (oldest entries first). */
  importState(state: HpackDecoderState): void {
    checkSize('maxTableSize', state.maxTableSize);
    checkSize('tableMaxSize', state.tableMaxSize);
    this.maxTableSize = state.maxTableSize;
    this.table.setMaxSize(state.tableMaxSize);
    while (this.table.count > 0) this.table.setMaxSize(0);
    this.table.setMaxSize(state.tableMaxSize);
    for (let i = 0; i + 1 < state.entries.length; i += 2) this.table.add(state.entries[i], state.entries[i + 1]);
    this.requiredUpdate = state.requiredUpdate;
  }

  /** Our advertised SETTINGS_HEADER_TABLE_SIZE changed and the peer acknowledged it. */
  setMaxTableSize(n: number): void {
    checkSize('maxTableSize', n);
    this.maxTableSize = n;
    if (n < this.table.maxSize) {
      // The peer must shrink its table at its next block; entries beyond n are gone either way.
      this.table.setMaxSize(n);
      this.requiredUpdate = this.requiredUpdate < 0 ? n : Math.min(this.requiredUpdate, n);
    }
  }

  /**
   * Decodes one complete header block (HEADERS/PUSH_PROMISE plus CONTINUATIONs). Throws HpackError
   * on malformed input — a connection error (COMPRESSION_ERROR), after which this decoder refuses
   * further blocks.
   */
  decode(block: Uint8Array, start = 0, end = block.length): HpackDecodeResult {
    if (this.failed) throw new HpackError('HPACK decoder failed earlier: the connection is unusable');
    if (!(Number.isInteger(start) && Number.isInteger(end) && start >= 0 && start <= end && end <= block.length)) {
      throw new RangeError(`bad block range ${start}…${end} of ${block.length}`);
    }
    this.buf = (Buffer.isBuffer(block) ? block : Buffer.from(block.buffer, block.byteOffset, block.byteLength)) as Latin1Buffer;
    this.pos = start;
    this.end = end;
    try {
      return this.decodeBlock();
    } catch (err) {
      this.failed = true;
      throw err;
    } finally {
      this.buf = EMPTY;
      if (this.scratch.length > SCRATCH_KEEP) this.scratch = Buffer.allocUnsafe(256) as Latin1Buffer;
    }
  }

  private decodeBlock(): HpackDecodeResult {
    const buf = this.buf;
    const end = this.end;
    const table = this.table;

    // Dynamic table size updates come first or not at all (RFC 7541 §4.2).
    let smallestUpdate = -1;
    while (this.pos < end && (buf[this.pos] & 0xe0) === 0x20) {
      const size = this.readInt(5);
      if (size > this.maxTableSize) throw new HpackError(`dynamic table size update to ${size} exceeds the limit ${this.maxTableSize}`);
      table.setMaxSize(size);
      if (smallestUpdate < 0 || size < smallestUpdate) smallestUpdate = size;
    }
    if (this.requiredUpdate >= 0) {
      if (smallestUpdate < 0 || smallestUpdate > this.requiredUpdate) {
        throw new HpackError(`expected a dynamic table size update to at most ${this.requiredUpdate} at the start of the block`);
      }
      this.requiredUpdate = -1;
    }

    const headers: string[] = [];
    let neverIndexed: string[] | undefined;
    const limit = this.maxHeaderListSize;
    let listSize = 0;
    let overflow = false;
    while (this.pos < end) {
      const first = buf[this.pos];
      let name: string;
      let value: string;
      if (first >= 0x80) {
        // 1xxxxxxx indexed field (§6.1)
        const index = this.readInt(7);
        if (index <= STATIC_TABLE_LENGTH) {
          if (index === 0) throw new HpackError('indexed field with index 0');
          name = STATIC_NAMES[index];
          value = STATIC_VALUES[index];
        } else {
          const i = index - STATIC_TABLE_LENGTH;
          if (i > table.count) throw new HpackError(`index ${index} beyond the tables (${STATIC_TABLE_LENGTH + table.count} entries)`);
          name = table.nameAt(i);
          value = table.valueAt(i);
        }
      } else if (first >= 0x40) {
        // 01xxxxxx literal with incremental indexing (§6.2.1): decoded even in overflow, for the table.
        const index = this.readInt(6);
        name = index === 0 ? this.readString() : this.nameAt(index);
        value = this.valueOf(index);
        table.add(name, value);
      } else if (first >= 0x20) {
        throw new HpackError('dynamic table size update after the first field of the block');
      } else {
        // 0000xxxx literal without indexing, 0001xxxx never indexed (§6.2.2, §6.2.3)
        const index = this.readInt(4);
        if (overflow) {
          // Nothing is kept any more and the table does not change: only check the representation.
          if (index === 0) this.skipString();
          else this.nameAt(index);
          this.skipString();
          continue;
        }
        name = index === 0 ? this.readString() : this.nameAt(index);
        value = first >= 0x10 ? this.readString() : this.valueOf(index);
        if (first >= 0x10) (neverIndexed ??= []).push(name);
      }
      if (overflow) continue;
      listSize += name.length + value.length + ENTRY_OVERHEAD;
      if (listSize > limit) {
        overflow = true;
        headers.length = 0;
        neverIndexed = undefined;
      } else {
        headers.push(name, value);
      }
    }
    return { headers, overflow, neverIndexed };
  }

  /** Name of a field whose name is given by index (≥ 1). */
  private nameAt(index: number): string {
    if (index <= STATIC_TABLE_LENGTH) return STATIC_NAMES[index];
    const i = index - STATIC_TABLE_LENGTH;
    if (i > this.table.count) throw new HpackError(`name index ${index} beyond the tables (${STATIC_TABLE_LENGTH + this.table.count} entries)`);
    return this.table.nameAt(i);
  }

  /** An integer with an N-bit prefix (RFC 7541 §5.1) at pos; the flag bits above the prefix are ignored. */
  private readInt(prefixBits: number): number {
    const buf = this.buf;
    const end = this.end;
    let pos = this.pos;
    if (pos >= end) throw new HpackError('truncated integer');
    const max = (1 << prefixBits) - 1;
    let value = buf[pos++] & max;
    if (value === max) {
      let shift = 0;
      let b: number;
      do {
        if (pos >= end) throw new HpackError('truncated integer');
        if (shift > 28) throw new HpackError('integer encoding too long');
        b = buf[pos++];
        value += (b & 0x7f) * 2 ** shift;
        shift += 7;
      } while (b >= 0x80);
      if (value > MAX_INT) throw new HpackError(`integer ${value} out of range`);
    }
    this.pos = pos;
    return value;
  }

  /** Reads a string's header (H bit, length) and checks the length; leaves pos at the octets. */
  private readStringLength(): number {
    const length = this.readInt(7);
    if (length > this.maxStringLength) throw new HpackError(`string of ${length} octets exceeds the limit ${this.maxStringLength}`);
    if (length > this.end - this.pos) throw new HpackError(`string of ${length} octets runs past the end of the block`);
    return length;
  }

  /** A string literal (RFC 7541 §5.2). */
  private readString(): string {
    if (this.pos >= this.end) throw new HpackError('truncated string');
    const huffman = this.buf[this.pos] >= 0x80;
    const length = this.readStringLength();
    const start = this.pos;
    this.pos = start + length;
    if (!huffman) return this.buf.latin1Slice(start, start + length);
    const out = this.scratchFor(huffmanMaxDecodedLength(length));
    const n = huffmanDecode(this.buf, start, start + length, out);
    if (n < 0) throw new HpackError(n === HUFFMAN_EOS ? 'EOS symbol in a Huffman string' : 'Huffman string with invalid padding');
    return out.latin1Slice(0, n);
  }

  /**
   * The value of a literal field whose name is static-table entry `index` (else any literal).
   * Why: peers that do not reference their own table entries send the same literals in every
   * block (nginx: `server`, `date`, `content-type`, `content-length` with incremental indexing on
   * each response). The same octets as last time for that name are the same string: no Huffman
   * decode, no new string (and its hash, cached in the string, serves the next encoder's lookups).
   */
  private valueOf(index: number): string {
    const buf = this.buf;
    const from = this.pos;
    const span = (buf[from] & 0x7f) + 1; // prefix byte + octets, for lengths under 127
    if (index === 0 || index > STATIC_TABLE_LENGTH || from >= this.end || span > MEMO_BYTES || from + span > this.end) return this.readString();
    const memo = (this.memo ??= { bytes: [], span: new Uint8Array(STATIC_TABLE_LENGTH + 1), value: [] });
    const seen = memo.bytes[index];
    if (seen !== undefined && memo.span[index] === span && sameOctets(seen, buf, from, span)) {
      this.pos = from + span;
      return memo.value[index];
    }
    const value = this.readString(); // (checked as any literal; a later match repeats these octets)
    buf.copy((memo.bytes[index] ??= Buffer.allocUnsafe(MEMO_BYTES)), 0, from, from + span);
    memo.span[index] = span;
    memo.value[index] = value;
    return value;
  }

  /** Checks a string literal and steps over it without decoding it into memory. */
  private skipString(): void {
    if (this.pos >= this.end) throw new HpackError('truncated string');
    const huffman = this.buf[this.pos] >= 0x80;
    const length = this.readStringLength();
    const start = this.pos;
    this.pos = start + length;
    if (!huffman) return;
    const err = huffmanValidate(this.buf, start, start + length);
    if (err < 0) throw new HpackError(err === HUFFMAN_EOS ? 'EOS symbol in a Huffman string' : 'Huffman string with invalid padding');
  }

  private scratchFor(n: number): Latin1Buffer {
    if (this.scratch.length < n) this.scratch = Buffer.allocUnsafe(Math.max(n, this.scratch.length * 2)) as Latin1Buffer;
    return this.scratch;
  }
}

// ── Encoder ──────────────────────────────────────────────────────────────────────────────────

/**
 * Fields whose values change with nearly every message. Indexing them would only push useful
 * entries out of the table, so they go as literals without indexing (the name is still indexed).
 * Not `date`: it changes once a second, and a busy connection sends the same value in every
 * response of that second (an index byte instead of a Huffman-coded 29-character literal: 40% of
 * encoding a typical response block).
 */
const NOT_INDEXED = new Set([
  'age',
  'content-length',
  'content-range',
  'etag',
  'expires',
  'if-modified-since',
  'if-none-match',
  'if-range',
  'if-unmodified-since',
  'last-modified',
  'location',
  'range',
  'retry-after',
  'grpc-timeout',
  'x-request-id',
  'x-correlation-id',
  'traceparent',
  'x-b3-traceid',
  'x-b3-spanid',
  'x-b3-parentspanid',
  'b3',
  'x-amzn-trace-id',
  'x-cloud-trace-context',
  'x-datadog-trace-id',
  'x-datadog-parent-id',
  'sofa-trace-id',
  'sofa-rpc-id',
]);

/**
 * Fields sent as never-indexed literals (RFC 7541 §7.1.3), so that no intermediary stores them and
 * a shared compression context cannot be probed to guess them (CRIME-style): credentials, and
 * cookies short enough to guess. Long cookies are indexed: they repeat on every request, and
 * guessing a long random value through the table is impractical.
 */
function isSensitive(name: string, value: string): boolean {
  return (
    name === 'authorization' ||
    name === 'proxy-authorization' ||
    name === 'set-cookie' ||
    (name === 'cookie' && value.length < 20)
  );
}

/** Blocks longer than this are not remembered (a typical head encodes to 10–80 bytes once indexed). */
const MEMO_BLOCK_BYTES = 256;

/** Two field lists are the same strings (mostly the same string objects: `===` is then a pointer compare). */
function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Strings shorter than this have a one-byte length prefix (7-bit prefix, 127 would need two). */
const SHORT_STRING = 0x7f;

/** Scratch bytes writeString() may use for s: a short one is Huffman-coded before it is measured. */
function roomFor(s: string): number {
  return s.length < SHORT_STRING ? 1 + 4 * s.length : 6 + s.length;
}

export interface HpackEncoderOptions {
  /**
   * The most table memory this encoder will use, whatever the peer allows (default 4096). Entries
   * are strings shared with the caller, so this bounds bookkeeping rather than copies.
   */
  maxTableSize?: number;
}

export class HpackEncoder {
  private readonly table: EncoderTable;
  private readonly ownMaxTableSize: number;
  /** Table size changes to announce at the start of the next block: the final value, or -1 … */
  private pendingFinal = -1;
  /** … and the smallest value reached since the last block (RFC 7541 §4.2), Infinity when none. */
  private pendingLowest = Infinity;
  private scratch: Latin1Buffer = Buffer.allocUnsafe(1024) as Latin1Buffer;
  private n = 0;
  /**
   * The last block that changed nothing in the table: its fields, its bytes, and the table's
   * `changes` then. Why: a connection sends the same head again and again (every response of an
   * upstream, every request of a client), and once its fields are in the table the block is the
   * same bytes as long as the table is the same table. A repeat then costs a compare of the
   * field strings (mostly the very same strings: the decoder hands them out) and a copy, instead
   * of three or four Map lookups per field.
   */
  private memoFields: string[] = [];
  private memoBytes: Buffer | undefined;
  private memoLength = 0;
  private memoChanges = -1;

  constructor(opts: HpackEncoderOptions = {}) {
    this.ownMaxTableSize = opts.maxTableSize ?? DEFAULT_HEADER_TABLE_SIZE;
    checkSize('maxTableSize', this.ownMaxTableSize);
    // The peer's decoder starts at the default size; announce ours first if it is smaller.
    this.table = new EncoderTable(DEFAULT_HEADER_TABLE_SIZE);
    this.setPeerMaxTableSize(DEFAULT_HEADER_TABLE_SIZE);
  }

  /**
   * The peer's decoder table is unknown to this encoder (a connection moved here from another
   * process): the next block opens with a size update to 0, which empties it, then the size this
   * encoder uses (RFC 7541 §4.2), so both tables start empty together.
   */
  forgetPeerTable(): void {
    if (this.pendingFinal < 0) this.pendingFinal = Math.min(this.ownMaxTableSize, this.table.maxSize);
    this.pendingLowest = 0;
  }

  /** The peer's SETTINGS_HEADER_TABLE_SIZE (from its SETTINGS frame). */
  setPeerMaxTableSize(n: number): void {
    checkSize('peer maxTableSize', n);
    const target = Math.min(n, this.ownMaxTableSize);
    this.pendingFinal = target;
    if (target < this.pendingLowest) this.pendingLowest = target;
  }

  /**
   * Encodes a header list into a new Buffer holding one header block.
   * neverIndex: names to send as never-indexed literals besides the built-in sensitive ones — the
   * decoder's `neverIndexed` when forwarding (RFC 7541 §6.2.3).
   * Names must be lower case, and all text latin1 (a char above 0xFF throws a RangeError; the
   * encoder then stays usable: its next block resets the peer's table).
   */
  encode(headers: readonly string[], neverIndex?: readonly string[]): Buffer {
    const n = this.encodeBlock(headers, neverIndex);
    const out = Buffer.allocUnsafe(n);
    this.scratch.copy(out, 0, 0, n);
    this.releaseScratch();
    return out;
  }

  /**
   * Encodes like encode() into the encoder's own buffer and returns the block's length; the block
   * is `encoded[0, length)` until the next call (then call releaseScratch()). A codec copies it
   * straight to its output: no Buffer per block.
   */
  encodeBlock(headers: readonly string[], neverIndex?: readonly string[]): number {
    if ((headers.length & 1) !== 0) throw new TypeError('headers must be a flat [name, value, …] list');
    const plain = this.pendingFinal < 0 && (neverIndex === undefined || neverIndex.length === 0);
    if (plain && this.memoChanges === this.table.changes && sameStrings(headers, this.memoFields)) {
      const length = this.memoLength;
      this.memoBytes!.copy(this.scratch, 0, 0, length);
      return (this.n = length);
    }
    this.n = 0;
    const changesBefore = this.table.changes;
    try {
      if (this.pendingFinal >= 0) this.writeSizeUpdates();
      for (let i = 0; i < headers.length; i += 2) {
        const name = headers[i];
        this.encodeField(name, headers[i + 1], neverIndex !== undefined && neverIndex.includes(name));
      }
      if (plain && this.table.changes === changesBefore) this.remember(headers);
    } catch (err) {
      // Fields already added to our table will never reach the peer. Emptying both tables at the
      // next block (size update to 0, then back) puts them in step again.
      this.pendingLowest = 0;
      if (this.pendingFinal < 0) this.pendingFinal = this.table.maxSize;
      throw err;
    }
    return this.n;
  }

  /** Keeps the block just encoded (which changed nothing in the table) for a repeat of its fields. */
  private remember(headers: readonly string[]): void {
    const n = this.n;
    if (n > MEMO_BLOCK_BYTES) return;
    const fields = this.memoFields;
    fields.length = headers.length;
    for (let i = 0; i < headers.length; i++) fields[i] = headers[i];
    const bytes = (this.memoBytes ??= Buffer.allocUnsafe(MEMO_BLOCK_BYTES));
    this.scratch.copy(bytes, 0, 0, n);
    this.memoLength = n;
    this.memoChanges = this.table.changes;
  }

  /** The buffer encodeBlock() wrote into. */
  get encoded(): Buffer {
    return this.scratch;
  }

  /** Drops a scratch buffer grown past its usual size (one huge block must not stay allocated). */
  releaseScratch(): void {
    if (this.scratch.length > SCRATCH_KEEP) this.scratch = Buffer.allocUnsafe(1024) as Latin1Buffer;
  }

  /** Entries in the dynamic table, newest first, as [name, value, …] (for tests and diagnostics). */
  dynamicTable(): string[] {
    const out: string[] = [];
    for (let i = 1; i <= this.table.count; i++) out.push(this.table.nameAt(i), this.table.valueAt(i));
    return out;
  }

  private writeSizeUpdates(): void {
    const table = this.table;
    const lowest = this.pendingLowest;
    const final = this.pendingFinal;
    this.ensureRoom(16);
    if (lowest < table.maxSize && lowest < final) {
      this.writeInt(0x20, 5, lowest);
      table.setMaxSize(lowest);
    }
    if (final !== table.maxSize) {
      this.writeInt(0x20, 5, final);
      table.setMaxSize(final);
    }
    this.pendingFinal = -1;
    this.pendingLowest = Infinity;
  }

  private encodeField(name: string, value: string, neverIndex: boolean): void {
    const table = this.table;
    const byStatic = STATIC_BY_NAME.get(name);
    const sensitive = neverIndex || isSensitive(name, value);
    let byDynamic: NameEntries | undefined;
    if (!sensitive) {
      const staticIndex = byStatic?.values.get(value);
      if (staticIndex !== undefined) {
        this.ensureRoom(6);
        this.writeInt(0x80, 7, staticIndex);
        return;
      }
      byDynamic = table.byName.get(name);
      const id = byDynamic?.values.get(value);
      if (id !== undefined) {
        this.ensureRoom(6);
        this.writeInt(0x80, 7, STATIC_TABLE_LENGTH + table.indexOf(id));
        return;
      }
    } else if (byStatic === undefined) {
      byDynamic = table.byName.get(name); // for the name only: a sensitive value is never matched
    }

    const nameIndex =
      byStatic !== undefined ? byStatic.index : byDynamic !== undefined ? STATIC_TABLE_LENGTH + table.indexOf(byDynamic.newest) : 0;
    const indexing = !sensitive && this.worthIndexing(name, value);
    this.ensureRoom(6 + (nameIndex === 0 ? roomFor(name) : 0) + roomFor(value));
    if (sensitive) this.writeInt(0x10, 4, nameIndex);
    else if (indexing) this.writeInt(0x40, 6, nameIndex);
    else this.writeInt(0x00, 4, nameIndex);
    if (nameIndex === 0) this.writeString(name);
    this.writeString(value);
    // Only now: writeString() throws on non-latin1 text, and a field must not be in our table
    // unless it is in the block.
    if (indexing) table.add(name, value);
  }

  /**
   * Whether a field should enter the dynamic table. Not: entries over half the table (they would
   * flush everything else for one likely-unique value), per-message values (NOT_INDEXED), and a
   * :path with a query — the path part repeats, but the query usually carries ids and tokens; a
   * plain path (REST resources, gRPC methods) is indexed.
   */
  private worthIndexing(name: string, value: string): boolean {
    if ((name.length + value.length + ENTRY_OVERHEAD) * 2 > this.table.maxSize) return false;
    if (NOT_INDEXED.has(name)) return false;
    if (name === ':path' && value.includes('?')) return false;
    return true;
  }

  /** A string literal (RFC 7541 §5.2), Huffman-coded when that is shorter; roomFor(s) is reserved. */
  private writeString(s: string): void {
    const length = s.length;
    const out = this.scratch;
    const at = this.n;
    if (length < SHORT_STRING) {
      // Nearly every string: Huffman-code it straight after a one-byte length prefix, and put the
      // raw octets there instead if the code came out no shorter. One pass over the text.
      const end = huffmanEncode(s, out, at + 1);
      if (end - at - 1 < length) {
        out[at] = 0x80 | (end - at - 1);
        this.n = end;
      } else {
        out[at] = length;
        this.n = at + 1 + out.latin1Write(s, at + 1);
      }
      return;
    }
    const huffmanLength = huffmanEncodedLength(s);
    if (huffmanLength < length) {
      this.writeInt(0x80, 7, huffmanLength);
      this.n = huffmanEncode(s, out, this.n);
    } else {
      this.writeInt(0x00, 7, length);
      this.n += out.latin1Write(s, this.n);
    }
  }

  /** An integer with an N-bit prefix (RFC 7541 §5.1), the first byte carrying `flags` above it. */
  private writeInt(flags: number, prefixBits: number, value: number): void {
    const out = this.scratch;
    const max = (1 << prefixBits) - 1;
    if (value < max) {
      out[this.n++] = flags | value;
      return;
    }
    let n = this.n;
    out[n++] = flags | max;
    value -= max;
    while (value >= 0x80) {
      out[n++] = (value & 0x7f) | 0x80;
      value = Math.floor(value / 0x80);
    }
    out[n++] = value;
    this.n = n;
  }

  private ensureRoom(bytes: number): void {
    if (this.n + bytes <= this.scratch.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.scratch.length * 2, this.n + bytes)) as Latin1Buffer;
    this.scratch.copy(grown, 0, 0, this.n);
    this.scratch = grown;
  }
}
