/**
 * Property-based tests of the SOFA Bolt codec (src/codecs/bolt/frame.ts), with fast-check:
 *
 * - frames made by sofa-bolt-node (the reference encoder sofa-rpc-node uses), for random calls,
 *   responses and heartbeats over v1, v2 and v2 + CRC, decode to the fields they were made from;
 *   frames built here from arbitrary field values (every byte of the fixed header, class name,
 *   header map, content) decode back to those values; the proxy's own frames (boltResponse,
 *   setRequestId) decode as they should, by this codec and by sofa-bolt-node;
 * - a stream of frames cut into arbitrary reads, gathered by FrameBuffer as rpc-connection.ts does
 *   (ids rewritten in place as the proxy does), decodes to the same frames, and the views handed
 *   out stay intact;
 * - no input (random bytes, mutated valid streams) makes the decoding path throw anything but
 *   BoltProtocolError: decodeBoltFrame, parseHeaderMap, and the replies the proxy builds for a
 *   decoded request (heartbeat ack, error reply, id rewrite).
 */
import { createRequire } from 'node:module';
import { crc32 } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { boltProtocol } from '../../src/proxy/rpc/bolt.ts';
import { BOLT_V1, BOLT_V2, BoltCmd, BoltProtocolError, BoltStatus, BoltType, boltResponse, decodeBoltFrame, parseHeaderMap, readRouting, setRequestId, type BoltFrame, type BoltRouting } from '../../src/codecs/bolt/frame.ts';
import { copyOut, FrameBuffer } from '../../src/codecs/frame-buffer.ts';
import { bytesArb, cutsArb, fcParams, FUZZ_SEED, mutate, mutationsArb, splitAt } from '../support/fuzz.ts';

const require = createRequire(import.meta.url);
const reference = require('sofa-bolt-node/lib/protocol') as {
  requestEncode(id: number, req: object, options: object): Buffer;
  responseEncode(id: number, res: object, options: object): Buffer;
  heartbeatEncode(id: number, hb: object, options: object): Buffer;
  decode(buf: Buffer, options?: object): { packetId: number; packetType: string; data?: { error?: Error | null; appResponse?: unknown; serverSignature?: string; methodName?: string; args?: unknown[] }; options: Record<string, unknown> };
};

const MAX = 1 << 20;

/**
 * Where sofa-bolt-node's stream decoder (what sofa-rpc-node servers read with) cuts these bytes
 * into frames: the lengths it hands to protocol.decode, recorded instead of decoded. A frame the
 * proxy forwards must be cut there exactly as the proxy cut it, or the next frame on the
 * multiplexed upstream connection (another client's call) would be read from the wrong offset.
 */
const ReferenceDecoder = require('sofa-bolt-node/lib/decoder') as new () => import('node:stream').Writable;
function referenceCuts(bytes: Buffer): number[] {
  const cuts: number[] = [];
  const decode = reference.decode;
  reference.decode = (packet: Buffer) => {
    cuts.push(packet.length);
    return { packetId: 0, packetType: 'ignored', options: {} };
  };
  try {
    const d = new ReferenceDecoder();
    d.on('error', () => {});
    d.write(bytes); // decoded synchronously by the first write
  } finally {
    reference.decode = decode;
  }
  return cuts;
}

// ── A frame builder from field values (the layout in the codec's header comment) ──────────────

interface Spec {
  proto: number;
  ver1: number;
  type: number;
  cmdCode: number;
  ver2: number;
  requestId: number;
  codec: number;
  switchFlags: number;
  timeout: number;
  status: number;
  className: string;
  /** Header map entries; null is written as length 0xFFFFFFFF. */
  header: [string | null, string | null][];
  /** Raw header block bytes instead of `header` (garbage for parseHeaderMap). */
  headerRaw?: Buffer;
  content: Buffer;
}

function headerBlock(entries: Spec['header']): Buffer {
  const parts: Buffer[] = [];
  const str = (s: string | null) => {
    const len = Buffer.alloc(4);
    if (s === null) {
      len.writeUInt32BE(0xffffffff);
      parts.push(len);
      return;
    }
    const b = Buffer.from(s, 'utf8');
    len.writeUInt32BE(b.length);
    parts.push(len, b);
  };
  for (const [k, v] of entries) {
    str(k);
    str(v);
  }
  return Buffer.concat(parts);
}

function encodeBolt(f: Spec): Buffer {
  const v2 = f.proto === BOLT_V2;
  const response = f.type === BoltType.RESPONSE;
  const className = Buffer.from(f.className, 'utf8');
  const header = f.headerRaw ?? headerBlock(f.header);
  const fixed = Buffer.alloc((v2 ? 2 : 0) + (response ? 20 : 22));
  let p = 0;
  fixed[p++] = f.proto;
  if (v2) fixed[p++] = f.ver1;
  fixed[p++] = f.type;
  fixed.writeUInt16BE(f.cmdCode, p);
  p += 2;
  fixed[p++] = f.ver2;
  fixed.writeUInt32BE(f.requestId, p);
  p += 4;
  fixed[p++] = f.codec;
  if (v2) fixed[p++] = f.switchFlags;
  if (response) {
    fixed.writeUInt16BE(f.status, p);
    p += 2;
  } else {
    fixed.writeInt32BE(f.timeout, p);
    p += 4;
  }
  fixed.writeUInt16BE(className.length, p);
  fixed.writeUInt16BE(header.length, p + 2);
  fixed.writeUInt32BE(f.content.length, p + 4);
  const frame = Buffer.concat([fixed, className, header, f.content]);
  if (!(v2 && f.switchFlags & 1)) return frame;
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(frame));
  return Buffer.concat([frame, crc]);
}

/** What decodeBoltFrame must report for a frame built from `f`. */
function expectedFields(f: Spec): Partial<BoltFrame> {
  const v2 = f.proto === BOLT_V2;
  const response = f.type === BoltType.RESPONSE;
  return {
    proto: f.proto,
    ver1: v2 ? f.ver1 : 1,
    type: f.type,
    cmdCode: f.cmdCode,
    ver2: f.ver2,
    requestId: f.requestId,
    codec: f.codec,
    switchFlags: v2 ? f.switchFlags : 0,
    timeout: response ? -1 : f.timeout,
    status: response ? f.status : 0,
    className: f.className,
  };
}

function fieldsOf(frame: BoltFrame, keys: object): Record<string, unknown> {
  return Object.fromEntries(Object.keys(keys).map((k) => [k, frame[k as keyof BoltFrame]]));
}

const u8 = fc.integer({ min: 0, max: 255 });
const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
/** Short text, any Unicode (UTF-8 on the wire). */
const utf8 = (max: number) => fc.string({ unit: 'grapheme', maxLength: max });
const headerEntries = fc.array(fc.tuple(fc.option(utf8(12), { nil: null, freq: 8 }), fc.option(utf8(24), { nil: null, freq: 8 })), { maxLength: 6 });

const specArb: fc.Arbitrary<Spec> = fc.record({
  proto: fc.constantFrom(BOLT_V1, BOLT_V2),
  ver1: u8,
  type: fc.constantFrom(BoltType.RESPONSE, BoltType.REQUEST, BoltType.ONEWAY),
  cmdCode: fc.oneof(fc.constantFrom(BoltCmd.HEARTBEAT, BoltCmd.REQUEST, BoltCmd.RESPONSE), u16),
  ver2: u8,
  requestId: fc.oneof(u32, fc.constantFrom(0, 1, 0x7fffffff, 0x80000000, 0xffffffff)),
  codec: fc.oneof(fc.constant(1), u8),
  switchFlags: fc.constantFrom(0, 1),
  timeout: fc.integer({ min: -0x80000000, max: 0x7fffffff }),
  status: fc.oneof(fc.constantFrom(...Object.values(BoltStatus)), u16),
  className: utf8(40),
  header: headerEntries,
  content: bytesArb(0, 400),
});

/** Random calls, responses and heartbeats made by sofa-bolt-node. */
const protocolType = fc.constantFrom(['bolt', false] as const, ['bolt2', false] as const, ['bolt2', true] as const);
const optsFor = ([type, crc]: readonly ['bolt' | 'bolt2', boolean]) => ({ protocolType: type, codecType: 'hessian2', boltVersion: type === 'bolt' ? 1 : 2, crcEnable: crc, sentReqs: new Map(), classCache: new Map() });
const javaArg = fc.oneof(
  fc.string({ maxLength: 40 }).map((s) => ({ $class: 'java.lang.String', $: s })),
  fc.integer().map((n) => ({ $class: 'int', $: n })),
  fc.boolean().map((b) => ({ $class: 'boolean', $: b })),
);
const serviceName = fc.stringMatching(/^[a-z][a-zA-Z0-9_.]{0,30}:[0-9.]{1,6}$/);
const idArb = fc.integer({ min: 0, max: 0x7fffffff }); // the reference writes ids as signed 32-bit

interface RefFrame { raw: Buffer; id: number; kind: 'request' | 'oneway' | 'response' | 'heartbeat'; proto: number; crc: boolean; service?: string; timeout?: number; status?: number }

const referenceFrame: fc.Arbitrary<RefFrame> = fc.oneof(
  fc.record({ id: idArb, proto: protocolType, service: serviceName, method: fc.stringMatching(/^[a-z][a-zA-Z0-9]{0,15}$/), args: fc.array(javaArg, { maxLength: 4 }), timeout: fc.integer({ min: 0, max: 0x7fffffff }), oneway: fc.boolean() })
    .map((r) => ({
      raw: Buffer.from(reference.requestEncode(r.id, { serverSignature: r.service, methodName: r.method, args: r.args, timeout: r.timeout, oneway: r.oneway, requestProps: { service: r.service } }, optsFor(r.proto))),
      id: r.id, kind: r.oneway ? 'oneway' as const : 'request' as const, proto: r.proto[0] === 'bolt' ? 1 : 2, crc: r.proto[1], service: r.service, timeout: r.timeout,
    })),
  fc.record({ id: idArb, proto: protocolType, ok: fc.boolean(), value: fc.string({ maxLength: 60 }), status: fc.constantFrom(0, 1, 2, 5, 6, 7, 0x10) })
    .map((r) => ({
      raw: Buffer.from(reference.responseEncode(r.id, r.ok ? { isError: false, appResponse: { $class: 'java.lang.String', $: r.value } } : { isError: true, errorMsg: r.value || 'x', status: r.status || 2 }, optsFor(r.proto))),
      id: r.id, kind: 'response' as const, proto: r.proto[0] === 'bolt' ? 1 : 2, crc: r.proto[1], status: r.ok ? 0 : r.status || 2,
    })),
  fc.record({ id: idArb, proto: protocolType })
    .map((r) => ({ raw: Buffer.from(reference.heartbeatEncode(r.id, {}, optsFor(r.proto))), id: r.id, kind: 'heartbeat' as const, proto: r.proto[0] === 'bolt' ? 1 : 2, crc: r.proto[1] })),
);

/** Any valid frame: from the reference or from field values. */
const anyFrame = fc.oneof(referenceFrame.map((f) => f.raw), specArb.map(encodeBolt));
const frameStream = fc.array(anyFrame, { minLength: 1, maxLength: 6 }).map((frames) => ({ frames, bytes: Buffer.concat(frames) }));

// ── The proxy's decoding path ────────────────────────────────────────────────────────────────

interface StreamOutcome {
  frames: BoltFrame[];
  error: BoltProtocolError | undefined;
  pending: number;
}

/**
 * Decodes reads the way RpcConnection.onData does: FrameBuffer.append, decode frames from the
 * view, FrameBuffer.consumed. Each frame then goes through what the proxy does with it: the
 * header map is read, a request's id is rewritten in place (the upstream id), and its replies
 * (a heartbeat ack, an error reply) are built. Only a BoltProtocolError may come out.
 */
function decodeReads(reads: Buffer[], maxFrameBytes = MAX): StreamOutcome {
  const fb = new FrameBuffer();
  const frames: BoltFrame[] = [];
  try {
    for (const chunk of reads) {
      const buf = fb.append(chunk);
      let offset = 0;
      for (;;) {
        const decoded = decodeBoltFrame(buf, offset, maxFrameBytes);
        if (!decoded) break;
        offset += decoded.length;
        proxyHandles(decoded.frame, frames.length);
        frames.push(decoded.frame);
      }
      fb.consumed(offset);
    }
  } catch (err) {
    if (!(err instanceof BoltProtocolError)) throw err;
    return { frames, error: err, pending: fb.pending };
  }
  return { frames, error: undefined, pending: fb.pending };
}

function proxyHandles(frame: BoltFrame, n: number): void {
  if (frame.type === BoltType.RESPONSE) return;
  parseHeaderMap(frame.header);
  if (frame.cmdCode === BoltCmd.HEARTBEAT) {
    boltResponse(frame, BoltStatus.SUCCESS, { heartbeat: true });
    return;
  }
  const clientId = frame.requestId;
  setRequestId(frame, 1000 + n); // upstream id, written into the frame in place
  boltResponse({ ...frame, requestId: clientId }, BoltStatus.NO_PROCESSOR, { message: 'SHUTTLE_E_NO_ROUTE' });
}

const raws = (o: StreamOutcome) => o.frames.map((f) => Buffer.from(f.raw).toString('hex'));

// ── Properties ───────────────────────────────────────────────────────────────────────────────

describe(`Bolt codec properties (fast-check seed ${FUZZ_SEED})`, () => {
  it('decodes frames made by sofa-bolt-node to the fields they were made from', () => {
    fc.assert(fc.property(referenceFrame, (ref) => {
      const { frame, length } = decodeBoltFrame(ref.raw, 0, MAX)!;
      expect(length).toBe(ref.raw.length);
      expect(frame.raw.equals(ref.raw)).toBe(true);
      expect(frame.proto).toBe(ref.proto);
      expect(frame.requestId).toBe(ref.id);
      expect(frame.switchFlags).toBe(ref.crc ? 1 : 0);
      expect(frame.codec).toBe(1);
      if (ref.kind === 'heartbeat') expect([frame.type, frame.cmdCode]).toEqual([BoltType.REQUEST, BoltCmd.HEARTBEAT]);
      if (ref.kind === 'request' || ref.kind === 'oneway') {
        expect([frame.type, frame.cmdCode, frame.timeout]).toEqual([ref.kind === 'oneway' ? BoltType.ONEWAY : BoltType.REQUEST, BoltCmd.REQUEST, ref.timeout]);
        expect(frame.className).toBe('com.alipay.sofa.rpc.core.request.SofaRequest');
        expect(parseHeaderMap(frame.header).get('service')).toBe(ref.service);
      }
      if (ref.kind === 'response') expect([frame.type, frame.cmdCode, frame.status]).toEqual([BoltType.RESPONSE, BoltCmd.RESPONSE, ref.status]);
      // Built again from the decoded fields, the frame is byte for byte the reference's.
      // (header and content are views made when read, not own fields: named here.)
      expect(encodeBolt({ ...frame, header: readEntries(frame.header), content: frame.content }).equals(ref.raw)).toBe(true);
    }), fcParams(400));
  });

  it('decodes frames built from arbitrary field values back to those values', () => {
    fc.assert(fc.property(specArb, (spec) => {
      const raw = encodeBolt(spec);
      const { frame, length } = decodeBoltFrame(raw, 0, MAX)!;
      expect(length).toBe(raw.length);
      const expected = expectedFields(spec);
      expect(fieldsOf(frame, expected)).toEqual(expected);
      expect(frame.header.equals(headerBlock(spec.header))).toBe(true);
      expect(frame.content.equals(spec.content)).toBe(true);
      expect(frame.raw.equals(raw)).toBe(true);
      const map = new Map<string, string>();
      for (const [k, v] of spec.header) if (k !== null) map.set(k, v ?? '');
      expect(parseHeaderMap(frame.header)).toEqual(map);
      // Every proper prefix needs more bytes; it never throws.
      for (const cut of [0, 1, 2, length >> 1, length - 1]) if (cut < length) expect(decodeBoltFrame(raw.subarray(0, cut), 0, MAX)).toBeUndefined();
    }), fcParams(600));
  });

  it('rewrites request ids (unsigned 32-bit, CRC kept valid) without touching anything else', () => {
    fc.assert(fc.property(fc.oneof(specArb.map(encodeBolt), referenceFrame.map((f) => f.raw)), fc.oneof(u32, fc.integer({ min: 0, max: 2 ** 33 })), (raw, id) => {
      const before = decodeBoltFrame(Buffer.from(raw), 0, MAX)!.frame;
      const frame = decodeBoltFrame(Buffer.from(raw), 0, MAX)!.frame;
      setRequestId(frame, id);
      const again = decodeBoltFrame(frame.raw, 0, MAX)!.frame; // a bad CRC would throw
      expect(again.requestId).toBe(id >>> 0);
      expect({ ...again, requestId: 0, raw: null, header: again.header.toString('hex'), content: again.content.toString('hex') })
        .toEqual({ ...before, requestId: 0, raw: null, header: before.header.toString('hex'), content: before.content.toString('hex') });
    }), fcParams(400));
  });

  it('builds heartbeat acks and error replies that this codec and sofa-bolt-node decode, for any request', () => {
    const requests = fc.oneof(
      referenceFrame.filter((f) => f.kind !== 'response').map((f) => f.raw),
      specArb.filter((s) => s.type !== BoltType.RESPONSE).map(encodeBolt),
    );
    fc.assert(fc.property(requests, fc.constantFrom(BoltStatus.NO_PROCESSOR, BoltStatus.ERROR_COMM, BoltStatus.TIMEOUT, BoltStatus.CONNECTION_CLOSED), fc.boolean(), (raw, status, heartbeat) => {
      const req = decodeBoltFrame(raw, 0, MAX)!.frame;
      const reply = boltResponse(req, heartbeat ? BoltStatus.SUCCESS : status, heartbeat ? { heartbeat: true } : { message: 'SHUTTLE_E_NO_ROUTE' });
      const { frame, length } = decodeBoltFrame(reply, 0, MAX)!;
      expect(length).toBe(reply.length);
      expect(fieldsOf(frame, { proto: 0, type: 0, cmdCode: 0, requestId: 0, status: 0, switchFlags: 0 }))
        .toEqual({ proto: req.proto, type: BoltType.RESPONSE, cmdCode: heartbeat ? BoltCmd.HEARTBEAT : BoltCmd.RESPONSE, requestId: req.requestId, status: heartbeat ? 0 : status, switchFlags: req.switchFlags });
      if (req.proto === BOLT_V2) expect(frame.ver1).toBe(req.ver1);
      if (req.codec === 1 && !heartbeat) {
        // Hessian2 error replies carry an RpcServerException a SOFA client reads.
        const peer = reference.decode(Buffer.from(reply), { sentReqs: new Map(), classCache: new Map() });
        expect(peer.packetId >>> 0).toBe(req.requestId);
        expect(String(peer.data?.error?.message)).toContain('shuttle: SHUTTLE_E_NO_ROUTE');
      }
    }), fcParams(400));
  });

  it('decodes a stream cut into arbitrary reads (through FrameBuffer, ids rewritten in place) as it decodes whole', () => {
    fc.assert(fc.property(frameStream, cutsArb(20), ({ frames, bytes }, cuts) => {
      const whole = decodeReads([Buffer.from(bytes)]);
      expect(whole.error).toBeUndefined();
      expect(whole.frames.length).toBe(frames.length);
      const split = decodeReads(splitAt(bytes, cuts));
      expect(split.error).toBeUndefined();
      expect(split.pending).toBe(0);
      // Compared once every read is in: later reads must not have written over earlier frames.
      expect(raws(split)).toEqual(raws(whole));
    }), fcParams(500));
  });

  it('decodes a stream one byte at a time', () => {
    fc.assert(fc.property(frameStream, ({ bytes }) => {
      const ones = Array.from({ length: bytes.length }, (_, i) => Buffer.from(bytes.subarray(i, i + 1)));
      expect(raws(decodeReads(ones))).toEqual(raws(decodeReads([Buffer.from(bytes)])));
    }), fcParams(100));
  });

  it('cuts every stream it accepts into the same frames as sofa-bolt-node does (no desync upstream)', () => {
    const streams = fc.oneof(frameStream.map((f) => f.bytes), fc.tuple(frameStream, mutationsArb(4)).map(([f, ops]) => mutate(f.bytes, ops)));
    fc.assert(fc.property(streams, (bytes) => {
      const lengths: number[] = [];
      let offset = 0;
      try {
        for (;;) {
          const d = decodeBoltFrame(bytes, offset, MAX);
          if (!d) break;
          lengths.push(d.length);
          offset += d.length;
        }
      } catch (err) {
        if (!(err instanceof BoltProtocolError)) throw err;
      }
      // The frames the proxy accepted, given to the reference alone: the same cuts.
      expect(referenceCuts(bytes.subarray(0, offset))).toEqual(lengths);
    }), fcParams(1500));
  });

  it('reads the routing fields as parseHeaderMap does, and refuses the same blocks', () => {
    const routingKey = fc.constantFrom('service', 'sofa_head_target_service', 'sofa_head_method_name', 'Service', 'servicf', 'sofa_head_method_namE');
    const entries = fc.array(fc.tuple(fc.option(fc.oneof(routingKey, utf8(12)), { nil: null, freq: 8 }), fc.option(utf8(24), { nil: null, freq: 8 })), { maxLength: 8 });
    const block = fc.oneof(entries.map(headerBlock), entries.chain((e) => fc.nat({ max: 200 }).map((cut) => headerBlock(e).subarray(0, cut))), bytesArb(0, 80));
    fc.assert(fc.property(block, (b) => {
      let map: Map<string, string> | undefined;
      let mapError: unknown;
      try {
        map = parseHeaderMap(b);
      } catch (err) {
        mapError = err;
      }
      const found: BoltRouting = { service: undefined, targetService: undefined, method: undefined };
      if (mapError !== undefined) {
        expect(() => readRouting(b, found)).toThrow(BoltProtocolError);
        return;
      }
      readRouting(b, found);
      expect(found).toEqual({ service: map!.get('service'), targetService: map!.get('sofa_head_target_service'), method: map!.get('sofa_head_method_name') });
    }), fcParams(1500));
  });

  it('reads the routing fields of a block inside other bytes as of the block alone (a frame is read in place)', () => {
    // A truncated block followed by bytes that would complete it must still be refused.
    const entries = fc.array(fc.tuple(fc.option(fc.constantFrom('service', 'sofa_head_method_name', 'x'), { nil: null }), fc.option(utf8(24), { nil: null })), { maxLength: 6 });
    const block = fc.oneof(entries.map(headerBlock), entries.chain((e) => fc.nat({ max: 120 }).map((cut) => headerBlock(e).subarray(0, cut))));
    fc.assert(fc.property(block, bytesArb(0, 16), entries.map(headerBlock), (b, before, after) => {
      const whole = Buffer.concat([before, b, after]);
      const alone: BoltRouting = { service: undefined, targetService: undefined, method: undefined };
      const inPlace: BoltRouting = { ...alone };
      let aloneError: unknown;
      try {
        readRouting(b, alone);
      } catch (err) {
        aloneError = err;
      }
      if (aloneError !== undefined) {
        expect(() => readRouting(whole, inPlace, before.length, before.length + b.length)).toThrow(BoltProtocolError);
        return;
      }
      readRouting(whole, inPlace, before.length, before.length + b.length);
      expect(inPlace).toEqual(alone);
    }), fcParams(1000));
  });

  it('decodes repeated and nearly repeated class names right (the memo of the last one, per frame kind)', () => {
    const className = fc.constantFrom('com.alipay.sofa.rpc.core.request.SofaRequest', 'com.alipay.sofa.rpc.core.request.SofaRequesu', 'com.alipay.sofa.rpc.core.response.SofaResponse', 'cöm.x', 'com.x', 'x'.repeat(129), 'x'.repeat(128) + 'y');
    const frames = fc.array(fc.tuple(specArb, className).map(([spec, name]) => ({ ...spec, className: name })), { minLength: 2, maxLength: 10 });
    fc.assert(fc.property(frames, (specs) => {
      for (const spec of specs) {
        const raw = encodeBolt(spec);
        const { frame } = decodeBoltFrame(raw, 0, MAX)!;
        expect(frame.className).toBe(spec.className);
        raw.fill(0x5a); // (the name outlives its read buffer)
        expect(frame.className).toBe(spec.className);
      }
    }), fcParams(500));
  });

  it('reads repeated and nearly repeated routing values right (the per-key memo of the last value)', () => {
    // Few values, so blocks repeat them: the same bytes, the same length with other bytes, a
    // prefix, a multi-byte character, one over the memo's 128 bytes, and a null.
    const value = fc.constantFrom('com.example.Echo', 'com.example.Echp', 'com.example.Ech', 'cöm.example.Echo', 'x'.repeat(129), 'x'.repeat(128) + 'y', '', null);
    const key = fc.constantFrom('service', 'sofa_head_target_service', 'sofa_head_method_name');
    const blocks = fc.array(fc.array(fc.tuple(key, value), { maxLength: 4 }).map(headerBlock), { minLength: 2, maxLength: 12 });
    fc.assert(fc.property(blocks, (list) => {
      for (const b of list) {
        const map = parseHeaderMap(b);
        const found: BoltRouting = { service: undefined, targetService: undefined, method: undefined };
        readRouting(b, found);
        expect(found).toEqual({ service: map.get('service'), targetService: map.get('sofa_head_target_service'), method: map.get('sofa_head_method_name') });
      }
    }), fcParams(800));
  });

  it('reads a frame the same from a copy of its bytes (copyOut: the read buffer is reused)', () => {
    fc.assert(fc.property(specArb, fc.nat({ max: 16 }), (spec, at) => {
      const raw = Buffer.concat([Buffer.alloc(at, 0xee), encodeBolt(spec)]);
      const { frame, length } = decodeBoltFrame(raw, at, MAX)!;
      expect(frame.raw.length).toBe(length);
      const fields = (f: BoltFrame) => ({ ...f, header: f.header.toString('hex'), content: f.content.toString('hex'), raw: f.raw.toString('hex') });
      const before = fields(frame);
      boltProtocol.setRaw(frame, copyOut(frame.raw));
      // The read buffer is overwritten: the frame kept its bytes, and routes the same.
      raw.fill(0x5a);
      expect(fields(frame)).toEqual(before);
      const call = boltProtocol.call(frame);
      const map = parseHeaderMap(frame.header);
      expect([call.service, call.method]).toEqual([map.get('service') ?? map.get('sofa_head_target_service') ?? '', map.get('sofa_head_method_name')]);
    }), fcParams(500));
  });

  it('throws nothing but BoltProtocolError for arbitrary bytes, whole or split, with any frame limit', () => {
    const limit = fc.oneof(fc.constant(MAX), fc.integer({ min: 0, max: 600 }));
    const boltish = fc.tuple(fc.constantFrom(1, 2), bytesArb(0, 600)).map(([p, rest]) => Buffer.concat([Buffer.from([p]), rest]));
    // Valid framing around a header block of random bytes: parseHeaderMap gets garbage.
    const garbageHeader = fc.tuple(specArb, bytesArb(0, 80)).map(([spec, h]) => encodeBolt({ ...spec, headerRaw: h }));
    fc.assert(fc.property(fc.oneof(bytesArb(0, 600), boltish, garbageHeader), cutsArb(8), limit, (input, cuts, max) => {
      decodeReads([input], max);
      decodeReads(splitAt(input, cuts), max);
    }), fcParams(2000));
  });

  it('throws nothing but BoltProtocolError for mutated valid streams, and a split decodes as the whole does', () => {
    fc.assert(fc.property(frameStream, mutationsArb(4), cutsArb(12), ({ bytes }, ops, cuts) => {
      const input = mutate(bytes, ops);
      const whole = decodeReads([Buffer.from(input)]);
      const split = decodeReads(splitAt(input, cuts));
      expect(raws(split)).toEqual(raws(whole));
      expect(split.error === undefined).toBe(whole.error === undefined);
    }), fcParams(1500));
  });
});

/** The entries of a raw header block (for rebuilding a decoded frame). */
function readEntries(header: Buffer): Spec['header'] {
  const out: Spec['header'] = [];
  let p = 0;
  const read = () => {
    const len = header.readUInt32BE(p);
    p += 4;
    if (len === 0xffffffff) return null;
    const s = header.toString('utf8', p, p + len);
    p += len;
    return s;
  };
  while (p < header.length) out.push([read(), read()]);
  return out;
}
