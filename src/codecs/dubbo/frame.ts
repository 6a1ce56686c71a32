/**
 * Dubbo framing: the 16-byte header decoded, the hessian2 body's leading fields and attachments
 * read for routing (with hessian.js), the body kept as opaque bytes and the frame raw for
 * forwarding.
 *
 *   magic 0xdabb (2) · flag (1): 0x80 request, 0x40 two-way, 0x20 event, low 5 bits serialization
 *   · status (1, responses) · request id (8) · body length (4) · body
 *
 *   request body (hessian2): dubbo version, service path, service version, method, parameter
 *   descriptor, the arguments, the attachments map
 */
import { createRequire } from 'node:module';
import { ShuttleError } from '../../errors.ts';

const require = createRequire(import.meta.url);
const hessian = require('hessian.js') as {
  DecoderV2: new (buf: Buffer) => { read(): unknown };
  encode(value: unknown, version: string): Buffer;
};

export const DUBBO_HEADER = 16;
const MAGIC_HIGH = 0xda;
const MAGIC_LOW = 0xbb;
const FLAG_REQUEST = 0x80;
const FLAG_TWOWAY = 0x40;
const FLAG_EVENT = 0x20;
const SERIALIZATION_MASK = 0x1f;
export const HESSIAN2_SERIALIZATION = 2;

/** Response status codes. */
export const DubboStatus = {
  OK: 20,
  CLIENT_TIMEOUT: 30,
  SERVER_TIMEOUT: 31,
  BAD_REQUEST: 40,
  BAD_RESPONSE: 50,
  SERVICE_NOT_FOUND: 60,
  SERVICE_ERROR: 70,
  SERVER_ERROR: 80,
  CLIENT_ERROR: 90,
  SERVER_THREADPOOL_EXHAUSTED: 100,
} as const;

export interface DubboFrame {
  isRequest: boolean;
  twoWay: boolean;
  /** Heartbeats and other events. */
  event: boolean;
  serialization: number;
  status: number;
  /** Unsigned 64-bit. */
  requestId: bigint;
  readonly body: Buffer;
  raw: Buffer;
}

/**
 * A frame as decodeDubboFrame() returns it: the id and the body are read from `raw` when asked.
 * Why: the proxy reads neither of a response (it swaps the id's bytes by hand), and a BigInt and a
 * Buffer view per frame were ~250 bytes a call.
 */
class DecodedDubboFrame implements DubboFrame {
  isRequest: boolean;
  twoWay: boolean;
  event: boolean;
  serialization: number;
  status: number;
  raw: Buffer;
  /** The id once read or set (undefined: read it from `raw`). */
  private id: bigint | undefined = undefined;

  constructor(flag: number, raw: Buffer) {
    this.isRequest = (flag & FLAG_REQUEST) !== 0;
    this.twoWay = (flag & FLAG_TWOWAY) !== 0;
    this.event = (flag & FLAG_EVENT) !== 0;
    this.serialization = flag & SERIALIZATION_MASK;
    this.status = raw[3];
    this.raw = raw;
  }

  get requestId(): bigint {
    return (this.id ??= this.raw.readBigUInt64BE(4));
  }

  set requestId(id: bigint) {
    this.id = id;
  }

  get body(): Buffer {
    return this.raw.subarray(DUBBO_HEADER);
  }

  /** The id's bytes in `raw` were written: read them again when asked. */
  idRewritten(): void {
    this.id = undefined;
  }
}

export interface DubboInvocation {
  dubboVersion: string;
  service: string;
  version: string;
  method: string;
  attachments: Record<string, string>;
}

export class DubboProtocolError extends ShuttleError {
  declare readonly code: 'SHUTTLE_E_DUBBO_PROTOCOL';
  constructor(message: string) {
    super('SHUTTLE_E_DUBBO_PROTOCOL', 'downstream', message);
    this.name = 'DubboProtocolError';
  }
}

/**
 * Decodes one frame at `offset`; undefined when more bytes are needed; throws when invalid.
 * The frame's bytes are a view of `buf` (`raw`, which a caller may replace by a copy).
 */
export function decodeDubboFrame(buf: Buffer, offset: number, maxFrameBytes: number): { frame: DubboFrame; length: number } | undefined {
  const avail = buf.length - offset;
  if (avail >= 1 && buf[offset] !== MAGIC_HIGH) throw new DubboProtocolError('not a Dubbo frame (bad magic)');
  if (avail >= 2 && buf[offset + 1] !== MAGIC_LOW) throw new DubboProtocolError('not a Dubbo frame (bad magic)');
  if (avail < DUBBO_HEADER) return undefined;
  const flag = buf[offset + 2];
  const bodyLength = buf.readUInt32BE(offset + 12);
  const length = DUBBO_HEADER + bodyLength;
  if (length > maxFrameBytes) throw new DubboProtocolError(`Dubbo frame of ${length} bytes is over the limit of ${maxFrameBytes}`);
  if (avail < length) return undefined;
  return { frame: new DecodedDubboFrame(flag, buf.subarray(offset, offset + length)), length };
}

/**
 * The routing fields of a hessian2 request body. Arguments are read past (the attachments come
 * after them) but not kept; a body that does not decode throws DubboProtocolError.
 */
export function readInvocation(frame: DubboFrame): DubboInvocation {
  if (frame.serialization !== HESSIAN2_SERIALIZATION) throw new DubboProtocolError(`unsupported Dubbo serialization ${frame.serialization}`);
  return readPlainInvocation(frame.body) ?? readInvocationByHessian(frame.body);
}

/** readInvocation through hessian.js, whatever the body holds (exported for tests). */
export function readInvocationByHessian(body: Buffer): DubboInvocation {
  try {
    const d = new hessian.DecoderV2(body);
    const dubboVersion = text(d.read(), 'dubbo version');
    const service = text(d.read(), 'service');
    const version = text(d.read(), 'version');
    const method = text(d.read(), 'method');
    let next = d.read();
    if (typeof next === 'number') next = d.read(); // Dubbox writes an int (-1) before the descriptor
    const desc = text(next, 'parameter descriptor');
    const args = countArgs(desc);
    for (let i = 0; i < args; i++) d.read();
    const raw = d.read() ?? {};
    if (typeof raw !== 'object' || Array.isArray(raw)) throw new DubboProtocolError('attachments are not a map');
    return { dubboVersion, service, version, method, attachments: scalarAttachments(raw as Record<string, unknown>) };
  } catch (err) {
    if (err instanceof DubboProtocolError) throw err;
    throw new DubboProtocolError(`malformed Dubbo request body: ${(err as Error).message}`);
  }
}

/**
 * Scalars only (Dubbo sends the caller's timeout as a number): lists, maps and shared references
 * are not turned into text, which a crafted body could make exponentially large.
 */
function scalarAttachments(raw: Record<string, unknown>): Record<string, string> {
  const attachments: Record<string, string> = {};
  // (for-in over a plain object's own keys: Object.entries made an array per entry, 400 bytes a call)
  for (const k in raw) {
    if (!Object.hasOwn(raw, k)) continue;
    const v = raw[k];
    if (typeof v === 'string') attachments[k] = v;
    else if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') attachments[k] = String(v);
  }
  return attachments;
}

/**
 * The common call read without hessian.js, which builds every argument as an object just to get
 * past it (most of a Dubbo call's proxy CPU): when every value up to the end of the attachments is
 * an ASCII string, an int, a long within 2^53, a boolean or null, and the attachments are an
 * untyped map ('H') of string keys, or null. Anything else — objects, lists, doubles, binary,
 * references, non-ASCII text, a body cut short — returns undefined, and hessian.js reads the body
 * as before (it decides what is malformed). The values match what hessian.js reads (property test;
 * exported for it).
 */
export function readPlainInvocation(body: Buffer): DubboInvocation | undefined {
  plainReader.buf = body as Latin1Buffer;
  plainReader.at = 0;
  plainReader.nth = 0;
  try {
    return readPlain(body, plainReader);
  } finally {
    plainReader.buf = NO_BODY; // (the body is not kept alive by the reader)
  }
}

function readPlain(body: Buffer, r: typeof plainReader): DubboInvocation | undefined {
  const dubboVersion = r.text();
  const service = r.text();
  const version = r.text();
  const method = r.text();
  if (dubboVersion === undefined || service === undefined || version === undefined || method === undefined) return undefined;
  let next = r.scalar();
  if (typeof next === 'number') next = r.scalar(); // Dubbox writes an int (-1) before the descriptor
  if (next === NOT_PLAIN || (next !== null && typeof next !== 'string')) return undefined;
  const args = countArgs(next ?? '');
  for (let i = 0; i < args; i++) if (r.scalar() === NOT_PLAIN) return undefined;
  const code = body[r.at];
  if (code === 0x4e) return { dubboVersion, service, version, method, attachments: {} };
  if (code !== 0x48) return undefined;
  r.at++;
  // The attachments as scalarAttachments() would make them, built directly: every value here is
  // a scalar (no map read and copied again: two keyed stores per attachment, ~5% of a call's
  // allocations). A later null removes an earlier value of the same key, as it would there.
  const attachments: Record<string, string> = {};
  for (;;) {
    if (r.at >= body.length) return undefined;
    if (body[r.at] === 0x5a) break;
    const k = r.scalar();
    if (typeof k !== 'string') return undefined;
    const v = r.scalar();
    if (v === NOT_PLAIN) return undefined;
    if (typeof v === 'string') attachments[k] = v;
    else if (v !== null) attachments[k] = String(v);
    else if (Object.hasOwn(attachments, k)) delete attachments[k];
  }
  return { dubboVersion, service, version, method, attachments };
}

type Latin1Buffer = Buffer & { latin1Slice(start: number, end: number): string };

/** A value readPlainInvocation leaves to hessian.js. */
const NOT_PLAIN = Symbol('not plain');

/** The cursor of readPlainInvocation (one body at a time). */
const NO_BODY = Buffer.alloc(0) as Latin1Buffer;

/**
 * The string read last at each position of a body (the nth string of the call), up to
 * MEMO_POSITIONS strings of at most MEMO_BYTES. Why: a client's calls repeat their shape and
 * most of their text (version, service, method, descriptor, attachment keys and values); the same
 * bytes at the same position as last time are the same string, so a repeat costs a byte compare
 * instead of a new string (15% of a Dubbo worker's user time went to making these strings).
 */
const MEMO_POSITIONS = 32;
const MEMO_BYTES = 96;
const memoBytes = Buffer.alloc(MEMO_POSITIONS * MEMO_BYTES);
const memoLength = new Int32Array(MEMO_POSITIONS).fill(-1);
const memoValue: string[] = new Array<string>(MEMO_POSITIONS).fill('');

const plainReader = {
  buf: NO_BODY,
  at: 0,
  /** Strings read so far from this body (the memo's position). */
  nth: 0,

  /** A header string: null reads as '' (as text() does); anything else not plain. */
  text(): string | undefined {
    const v = this.scalar();
    if (v === null) return '';
    return typeof v === 'string' ? v : undefined;
  },

  /** hessian2: string, int, long, boolean, null; NOT_PLAIN for any other value or a cut. */
  scalar(): string | number | boolean | null | typeof NOT_PLAIN {
    const b = this.buf;
    const at = this.at;
    if (at >= b.length) return NOT_PLAIN;
    const c = b[at];
    if (c <= 0x1f) return this.ascii(at + 1, c, true);
    if (c >= 0x30 && c <= 0x33) return at + 1 < b.length ? this.ascii(at + 2, (c - 0x30) * 256 + b[at + 1], true) : NOT_PLAIN;
    if (c === 0x53 || c === 0x52) return this.chunks();
    if (c >= 0x80 && c <= 0xbf) return this.skip(1, c - 0x90);
    if (c >= 0xc0 && c <= 0xcf) return at + 1 < b.length ? this.skip(2, ((c - 0xc8) << 8) + b[at + 1]) : NOT_PLAIN;
    if (c >= 0xd0 && c <= 0xd7) return at + 2 < b.length ? this.skip(3, ((c - 0xd4) << 16) + (b[at + 1] << 8) + b[at + 2]) : NOT_PLAIN;
    if (c >= 0xd8 && c <= 0xef) return this.skip(1, c - 0xe0);
    if (c >= 0xf0) return at + 1 < b.length ? this.skip(2, ((c - 0xf8) << 8) + b[at + 1]) : NOT_PLAIN;
    if (c >= 0x38 && c <= 0x3f) return at + 2 < b.length ? this.skip(3, ((c - 0x3c) << 16) + (b[at + 1] << 8) + b[at + 2]) : NOT_PLAIN;
    if (c === 0x49 || c === 0x59) return at + 4 < b.length ? this.skip(5, b.readInt32BE(at + 1)) : NOT_PLAIN;
    if (c === 0x4c) {
      if (at + 8 >= b.length) return NOT_PLAIN;
      const n = b.readBigInt64BE(at + 1);
      return n >= -0x1fffffffffffffn && n <= 0x1fffffffffffffn ? this.skip(9, Number(n)) : NOT_PLAIN;
    }
    if (c === 0x54) return this.skip(1, true);
    if (c === 0x46) return this.skip(1, false);
    if (c === 0x4e) return this.skip(1, null);
    return NOT_PLAIN;
  },

  skip<T>(n: number, v: T): T {
    this.at += n;
    return v;
  },

  /** `len` ASCII bytes from `from` (hessian lengths count characters: equal to bytes for ASCII). */
  ascii(from: number, len: number, move: boolean): string | typeof NOT_PLAIN {
    const b = this.buf;
    const end = from + len;
    if (end > b.length) return NOT_PLAIN;
    for (let i = from; i < end; i++) if (b[i] >= 0x80) return NOT_PLAIN;
    if (move) this.at = end;
    if (len === 0) return '';
    const n = this.nth++;
    if (n >= MEMO_POSITIONS || len > MEMO_BYTES) return b.latin1Slice(from, end);
    const at = n * MEMO_BYTES;
    if (memoLength[n] === len) {
      let same = true;
      for (let i = 0; i < len; i++) {
        if (memoBytes[at + i] !== b[from + i]) {
          same = false;
          break;
        }
      }
      if (same) return memoValue[n];
    }
    const value = b.latin1Slice(from, end);
    b.copy(memoBytes, at, from, end);
    memoLength[n] = len;
    memoValue[n] = value;
    return value;
  },

  /** 'R' (non-final) chunks, then a final chunk of any string form. */
  chunks(): string | typeof NOT_PLAIN {
    let out = '';
    for (;;) {
      const b = this.buf;
      const at = this.at;
      if (at >= b.length) return NOT_PLAIN;
      const c = b[at];
      if (c === 0x52 || c === 0x53) {
        if (at + 2 >= b.length) return NOT_PLAIN;
        const part = this.ascii(at + 3, b.readUInt16BE(at + 1), true);
        if (part === NOT_PLAIN) return NOT_PLAIN;
        out += part;
        if (c === 0x53) return out;
        continue;
      }
      const last = this.scalar();
      return typeof last === 'string' ? out + last : NOT_PLAIN;
    }
  },
};

/** A header field of the body: a string (null reads as empty), anything else is malformed. */
function text(v: unknown, what: string): string {
  if (v === null || v === undefined) return '';
  if (typeof v !== 'string') throw new DubboProtocolError(`Dubbo ${what} is not a string`);
  return v;
}

/** A JVM method has at most 255 parameters. */
const MAX_ARGS = 255;

/** Number of parameters in a JVM descriptor such as "Ljava/lang/String;I[J". */
export function countArgs(desc: string): number {
  let n = 0;
  for (let i = 0; i < desc.length; i++) {
    while (desc[i] === '[') i++;
    if (desc[i] === 'L') i = desc.indexOf(';', i);
    if (i < 0) throw new DubboProtocolError(`bad parameter descriptor "${desc.slice(0, 80)}"`);
    if (++n > MAX_ARGS) throw new DubboProtocolError(`more than ${MAX_ARGS} parameters in the descriptor`);
  }
  return n;
}

export function setDubboRequestId(frame: DubboFrame, id: bigint): void {
  frame.raw.writeBigUInt64BE(id, 4);
  frame.requestId = id;
}

/**
 * The proxy's own upstream ids are u32 (the high half 0): written by hand. Why: Buffer's BigInt
 * writes split the value with BigInt arithmetic, a few BigInts per call.
 */
export function setDubboRequestIdU32(frame: DubboFrame, id: number): void {
  writeU64(frame.raw, 0, id);
  idRewritten(frame);
}

function idRewritten(frame: DubboFrame): void {
  if (frame instanceof DecodedDubboFrame) frame.idRewritten();
  else frame.requestId = frame.raw.readBigUInt64BE(4);
}

/** The low 32 bits of a frame's id, without making a BigInt. */
export function dubboRequestIdLow(frame: DubboFrame): number {
  const b = frame.raw;
  return ((b[8] << 24) | (b[9] << 16) | (b[10] << 8) | b[11]) >>> 0;
}

/**
 * A frame's id as a number when it is below 2^53 (what clients use: counters), else as a bigint:
 * what the proxy keeps to restore the client's id (restoreDubboId) without BigInt arithmetic.
 */
export function dubboClientId(frame: DubboFrame): number | bigint {
  const b = frame.raw;
  const high = ((b[4] << 24) | (b[5] << 16) | (b[6] << 8) | b[7]) >>> 0;
  if (high >= 0x200000) return frame.requestId;
  return high * 0x100000000 + dubboRequestIdLow(frame);
}

/** Puts a dubboClientId() back as the frame's id. */
export function restoreDubboId(frame: DubboFrame, id: number | bigint): void {
  if (typeof id === 'bigint') return setDubboRequestId(frame, id);
  writeU64(frame.raw, Math.floor(id / 0x100000000), id >>> 0);
  idRewritten(frame);
}

function writeU64(b: Buffer, high: number, low: number): void {
  b[4] = high >>> 24;
  b[5] = (high >>> 16) & 0xff;
  b[6] = (high >>> 8) & 0xff;
  b[7] = high & 0xff;
  b[8] = low >>> 24;
  b[9] = (low >>> 16) & 0xff;
  b[10] = (low >>> 8) & 0xff;
  b[11] = low & 0xff;
}

/**
 * A response made by the proxy: a heartbeat acknowledgement (event, status OK, null body) or an
 * error (status, hessian2 string body with the message), under the request's id.
 */
export function dubboResponse(request: DubboFrame, status: number, opts: { heartbeat?: boolean; message?: string } = {}): Buffer {
  const body = hessian.encode(opts.heartbeat ? null : `shuttle: ${opts.message ?? `status ${status}`}`, '2.0');
  const out = Buffer.alloc(DUBBO_HEADER + body.length);
  out[0] = MAGIC_HIGH;
  out[1] = MAGIC_LOW;
  out[2] = (opts.heartbeat ? FLAG_EVENT : 0) | (request.serialization || HESSIAN2_SERIALIZATION);
  out[3] = status;
  out.writeBigUInt64BE(request.requestId, 4);
  out.writeUInt32BE(body.length, 12);
  body.copy(out, DUBBO_HEADER);
  return out;
}
