/**
 * Property-based tests of the Dubbo codec (src/codecs/dubbo/frame.ts), with fast-check:
 *
 * - requests, responses and heartbeats made by dubbo-remoting (the Dubbo protocol of
 *   sofa-rpc-node) for random calls decode to the fields they were made from, readInvocation
 *   included; bodies written value by value with hessian.js (any header strings, Dubbox's int,
 *   random parameter descriptors and arguments, attachments of every type) read back to those
 *   values; the proxy's own frames (dubboResponse, setDubboRequestId) decode as they should, by
 *   this codec and by dubbo-remoting;
 * - a stream of frames cut into arbitrary reads, gathered by FrameBuffer as rpc-connection.ts does
 *   (ids rewritten in place as the proxy does), decodes to the same frames;
 * - no input (random bytes, mutated frames, mutated hessian bodies, random descriptors) makes the
 *   decoding path throw anything but DubboProtocolError.
 */
import { createRequire } from 'node:module';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { copyOut, FrameBuffer } from '../../src/codecs/frame-buffer.ts';
import { dubboProtocol } from '../../src/proxy/rpc/dubbo.ts';
import { DUBBO_HEADER, DubboProtocolError, DubboStatus, countArgs, decodeDubboFrame, dubboResponse, readInvocation, readInvocationByHessian, readPlainInvocation, setDubboRequestId, type DubboFrame } from '../../src/codecs/dubbo/frame.ts';
import { bytesArb, cutsArb, fcParams, FUZZ_SEED, mutate, mutationsArb, splitAt } from '../support/fuzz.ts';

const require = createRequire(import.meta.url);
const hessian = require('hessian.js') as { encode(v: unknown, version: string): Buffer };
const reference = require('dubbo-remoting/lib/protocol') as {
  requestEncode(id: number, data: object, options: object): Buffer;
  responseEncode(id: number, data: object, options: object): Buffer;
  heartbeatEncode(id: number, hb: object, options: object): Buffer;
  decode(buf: Buffer, options?: object): { packetId: number | string; packetType: string; data: { error?: Error; appResponse?: unknown } | null };
};
const opts = { codecType: 'hessian2', classMap: {} };
const MAX = 1 << 20;

/**
 * Where dubbo-remoting's stream decoder (what sofa-rpc-node Dubbo servers read with) cuts these
 * bytes into frames: the lengths it hands to protocol.decode, recorded instead of decoded. A frame
 * the proxy forwards must be cut there exactly as the proxy cut it (no desync upstream).
 */
const ReferenceDecoder = require('dubbo-remoting/lib/decoder') as new () => import('node:stream').Writable;
function referenceCuts(bytes: Buffer): number[] {
  const cuts: number[] = [];
  const decode = reference.decode;
  reference.decode = (packet: Buffer) => {
    cuts.push(packet.length);
    return { packetId: 0, packetType: 'ignored', data: null };
  };
  try {
    const d = new ReferenceDecoder();
    d.on('error', () => {});
    d.write(bytes);
  } finally {
    reference.decode = decode;
  }
  return cuts;
}

// ── Frames made by dubbo-remoting ────────────────────────────────────────────────────────────

const word = fc.stringMatching(/^[a-zA-Z][a-zA-Z0-9_]{0,12}$/);
const serviceName = fc.array(word, { minLength: 1, maxLength: 4 }).map((w) => `com.${w.join('.')}`);
const versionArb = fc.stringMatching(/^[0-9]{1,2}(\.[0-9]{1,2}){0,2}$/);
const javaArg = fc.oneof(
  fc.string({ maxLength: 40 }).map((s) => ({ $class: 'java.lang.String', $: s })),
  fc.integer().map((n) => ({ $class: 'int', $: n })),
  fc.boolean().map((b) => ({ $class: 'boolean', $: b })),
  fc.array(fc.integer(), { maxLength: 5 }).map((xs) => ({ $class: '[int', $: xs })),
);
/** Attachment values as a caller sends them: strings, and numbers or booleans (read back as text). */
const RESERVED = new Set(['dubbo', 'path', 'group', 'version', 'interface']);
const attachmentKey = fc.stringMatching(/^[a-zA-Z][a-zA-Z0-9_.-]{0,15}$/).filter((k) => !RESERVED.has(k));
const attachmentValue = fc.oneof(fc.string({ maxLength: 30 }), fc.integer({ min: -0x80000000, max: 0x7fffffff }), fc.boolean());
const idArb = fc.oneof(fc.integer({ min: 0, max: 0x7fffffff }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }));

interface RefRequest { raw: Buffer; id: number; service: string; version: string; method: string; props: Record<string, string | number | boolean> }

const referenceRequest: fc.Arbitrary<RefRequest> = fc.record({
  id: idArb,
  service: serviceName,
  version: fc.option(versionArb, { nil: undefined }),
  method: word,
  args: fc.array(javaArg, { maxLength: 4 }),
  props: fc.dictionary(attachmentKey, attachmentValue, { maxKeys: 5 }),
}).map((r) => {
  const serverSignature = r.version === undefined ? r.service : `${r.service}:${r.version}`;
  return {
    raw: Buffer.from(reference.requestEncode(r.id, { serverSignature, methodName: r.method, args: r.args, requestProps: r.props }, opts)),
    id: r.id, service: r.service, version: r.version ?? '', method: r.method, props: r.props,
  };
});

const referenceOther = fc.oneof(
  fc.record({ id: idArb, ok: fc.boolean(), value: fc.string({ maxLength: 60 }) })
    .map((r) => ({ raw: Buffer.from(reference.responseEncode(r.id, r.ok ? { isError: false, appResponse: r.value } : { isError: true, errorMsg: r.value || 'x' }, opts)), id: r.id, kind: 'response' as const })),
  idArb.map((id) => ({ raw: Buffer.from(reference.heartbeatEncode(id, {}, opts)), id, kind: 'heartbeat' as const })),
);

// ── Frames built here: any header, bodies written value by value ─────────────────────────────

function frame(flag: number, status: number, id: bigint, body: Buffer): Buffer {
  const head = Buffer.alloc(DUBBO_HEADER);
  head[0] = 0xda;
  head[1] = 0xbb;
  head[2] = flag;
  head[3] = status;
  head.writeBigUInt64BE(id, 4);
  head.writeUInt32BE(body.length, 12);
  return Buffer.concat([head, body]);
}

const u64 = fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.constantFrom(0n, 1n, 2n ** 31n, 2n ** 32n - 1n, 2n ** 63n, 2n ** 64n - 1n));
const headerArb = fc.record({ flag: fc.integer({ min: 0, max: 255 }), status: fc.integer({ min: 0, max: 255 }), id: u64 });
const anyFrame = fc.tuple(headerArb, bytesArb(0, 300)).map(([h, body]) => ({ ...h, body, raw: frame(h.flag, h.status, h.id, body) }));

/** A JVM parameter type and an argument value for it (readInvocation only reads past arguments). */
const param = fc.oneof(
  fc.tuple(fc.constantFrom('I', 'J', 'S', 'B'), fc.integer({ min: -1000, max: 1000 })),
  fc.tuple(fc.constant('Z'), fc.boolean()),
  fc.tuple(fc.constant('D'), fc.double({ noNaN: true })),
  fc.tuple(fc.constant('Ljava/lang/String;'), fc.option(fc.string({ maxLength: 30 }), { nil: null })),
  fc.tuple(fc.constant('[I'), fc.array(fc.integer(), { maxLength: 6 })),
  fc.tuple(fc.constant('Ljava/util/Map;'), fc.dictionary(word, fc.oneof(fc.string({ maxLength: 10 }), fc.integer()), { maxKeys: 4 })),
  fc.tuple(fc.constant('[[Ljava/util/List;'), fc.array(fc.array(fc.string({ maxLength: 5 }), { maxLength: 3 }), { maxLength: 3 })),
);
/** Attachments a body may carry: scalars are read (as text), anything else is dropped. */
const attachments = fc.dictionary(attachmentKey, fc.oneof(
  { weight: 4, arbitrary: attachmentValue },
  { weight: 1, arbitrary: fc.oneof(fc.array(fc.integer(), { maxLength: 3 }), fc.dictionary(word, fc.string({ maxLength: 5 }), { maxKeys: 2 }), fc.constant(null)) },
), { maxKeys: 6 });
const headerString = fc.option(fc.string({ unit: 'grapheme', maxLength: 30 }), { nil: null, freq: 8 });

interface BuiltBody { values: unknown[]; expected: { dubboVersion: string; service: string; version: string; method: string; attachments: Record<string, string> } }

const bodyArb: fc.Arbitrary<BuiltBody> = fc.record({
  dubboVersion: headerString, service: headerString, version: headerString, method: headerString,
  dubbox: fc.boolean(), params: fc.array(param, { maxLength: 6 }), attachments, omitAttachments: fc.boolean(),
}).map((b) => {
  const desc = b.params.map(([t]) => t).join('');
  const values: unknown[] = [b.dubboVersion, b.service, b.version, b.method, ...(b.dubbox ? [-1] : []), desc, ...b.params.map(([, v]) => v)];
  // Encoders always write the attachments; a null map reads as none.
  values.push(b.omitAttachments ? null : b.attachments);
  const expectedAttachments: Record<string, string> = {};
  if (!b.omitAttachments) {
    for (const [k, v] of Object.entries(b.attachments)) if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') expectedAttachments[k] = String(v);
  }
  return { values, expected: { dubboVersion: b.dubboVersion ?? '', service: b.service ?? '', version: b.version ?? '', method: b.method ?? '', attachments: expectedAttachments } };
});
const hessianBody = (values: unknown[]) => Buffer.concat(values.map((v) => hessian.encode(v, '2.0')));
/** A two-way hessian2 request whose body is `values`. */
const requestFrame = (values: unknown[], id = 1n) => frame(0x80 | 0x40 | 2, 0, id, hessianBody(values));

const streamFrame = fc.oneof(referenceRequest.map((r) => r.raw), referenceOther.map((r) => r.raw), bodyArb.map((b) => requestFrame(b.values)), anyFrame.map((f) => f.raw));
const frameStream = fc.array(streamFrame, { minLength: 1, maxLength: 6 }).map((frames) => ({ frames, bytes: Buffer.concat(frames) }));

// ── The proxy's decoding path ────────────────────────────────────────────────────────────────

interface StreamOutcome { frames: DubboFrame[]; error: DubboProtocolError | undefined; pending: number }

/**
 * Decodes reads the way RpcConnection.onData does (FrameBuffer.append, decode from the view,
 * FrameBuffer.consumed), and does with each frame what the proxy does: heartbeats get an ack,
 * requests are read for routing (readInvocation), get their id rewritten in place and an error
 * reply built. Only a DubboProtocolError may come out.
 */
function decodeReads(reads: Buffer[], maxFrameBytes = MAX): StreamOutcome {
  const fb = new FrameBuffer();
  const frames: DubboFrame[] = [];
  try {
    for (const chunk of reads) {
      const buf = fb.append(chunk);
      let offset = 0;
      for (;;) {
        const decoded = decodeDubboFrame(buf, offset, maxFrameBytes);
        if (!decoded) break;
        offset += decoded.length;
        proxyHandles(decoded.frame, frames.length);
        frames.push(decoded.frame);
      }
      fb.consumed(offset);
    }
  } catch (err) {
    if (!(err instanceof DubboProtocolError)) throw err;
    return { frames, error: err, pending: fb.pending };
  }
  return { frames, error: undefined, pending: fb.pending };
}

function proxyHandles(f: DubboFrame, n: number): void {
  if (!f.isRequest) return;
  if (f.event) {
    dubboResponse(f, DubboStatus.OK, { heartbeat: true });
    return;
  }
  readInvocation(f);
  const clientId = f.requestId;
  setDubboRequestId(f, BigInt(1000 + n));
  dubboResponse({ ...f, requestId: clientId }, DubboStatus.SERVICE_NOT_FOUND, { message: 'SHUTTLE_E_NO_ROUTE' });
}

const raws = (o: StreamOutcome) => o.frames.map((f) => Buffer.from(f.raw).toString('hex'));

// ── Properties ───────────────────────────────────────────────────────────────────────────────

describe(`Dubbo codec properties (fast-check seed ${FUZZ_SEED})`, () => {
  it('decodes requests made by dubbo-remoting, and reads their service, version, method and attachments', () => {
    fc.assert(fc.property(referenceRequest, (ref) => {
      const { frame: f, length } = decodeDubboFrame(ref.raw, 0, MAX)!;
      expect(length).toBe(ref.raw.length);
      expect({ isRequest: f.isRequest, twoWay: f.twoWay, event: f.event, serialization: f.serialization, requestId: f.requestId })
        .toEqual({ isRequest: true, twoWay: true, event: false, serialization: 2, requestId: BigInt(ref.id) });
      expect(f.raw.equals(ref.raw)).toBe(true);
      const inv = readInvocation(f);
      expect({ service: inv.service, version: inv.version, method: inv.method }).toEqual({ service: ref.service, version: ref.version, method: ref.method });
      const props = Object.fromEntries(Object.entries(ref.props).map(([k, v]) => [k, String(v)]));
      expect(inv.attachments).toEqual({ ...props, dubbo: inv.dubboVersion, path: ref.service, group: '', ...(ref.version ? { version: ref.version } : {}) });
    }), fcParams(400));
  });

  it('decodes responses and heartbeats made by dubbo-remoting', () => {
    fc.assert(fc.property(referenceOther, (ref) => {
      const { frame: f, length } = decodeDubboFrame(ref.raw, 0, MAX)!;
      expect(length).toBe(ref.raw.length);
      expect(f.requestId).toBe(BigInt(ref.id));
      expect(f.isRequest).toBe(ref.kind === 'heartbeat');
      if (ref.kind === 'heartbeat') expect([f.event, f.twoWay]).toEqual([true, true]);
    }), fcParams(300));
  });

  it('decodes frames with any header fields and body to those values', () => {
    fc.assert(fc.property(anyFrame, (a) => {
      const { frame: f, length } = decodeDubboFrame(a.raw, 0, MAX)!;
      expect(length).toBe(a.raw.length);
      expect({ isRequest: f.isRequest, twoWay: f.twoWay, event: f.event, serialization: f.serialization, status: f.status, requestId: f.requestId })
        .toEqual({ isRequest: (a.flag & 0x80) !== 0, twoWay: (a.flag & 0x40) !== 0, event: (a.flag & 0x20) !== 0, serialization: a.flag & 0x1f, status: a.status, requestId: a.id });
      expect(f.body.equals(a.body)).toBe(true);
      for (const cut of [0, 1, 2, 15, length - 1]) if (cut >= 0 && cut < length) expect(decodeDubboFrame(a.raw.subarray(0, cut), 0, MAX)).toBeUndefined();
    }), fcParams(500));
  });

  it('reads plain bodies without hessian.js exactly as hessian.js does, and leaves it the others', () => {
    const ascii = fc.string({ maxLength: 40 });
    const scalar = fc.oneof(ascii, fc.string({ unit: 'grapheme', maxLength: 8 }), fc.integer(), fc.integer({ min: -300000, max: 300000 }), fc.boolean(), fc.constant(null),
      fc.oneof(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), fc.constantFrom(0n, -8n, 15n, 2047n, -2048n, 262143n, 2n ** 31n, 2n ** 53n - 1n, 2n ** 53n, -(2n ** 53n) - 1n)).map((n) => ({ $class: 'long', $: n.toString() })),
      fc.double({ noNaN: true }));
    const plainBody = fc.record({
      head: fc.array(fc.option(ascii, { nil: null, freq: 8 }), { minLength: 4, maxLength: 4 }), dubbox: fc.boolean(),
      params: fc.array(fc.tuple(fc.constantFrom('Ljava/lang/String;', 'I', 'J', 'Z'), scalar), { maxLength: 5 }),
      attachments: fc.oneof(fc.constant(null), fc.dictionary(fc.oneof(attachmentKey, ascii), scalar, { maxKeys: 6 })),
    }).map((b) => hessianBody([...b.head, ...(b.dubbox ? [-1] : []), b.params.map(([t]) => t).join(''), ...b.params.map(([, v]) => v), b.attachments]));
    let plain = 0;
    fc.assert(fc.property(fc.oneof(plainBody, bodyArb.map((b) => hessianBody(b.values)), fc.tuple(plainBody, mutationsArb(3)).map(([b, ops]) => mutate(b, ops))), (body) => {
      let fast;
      try {
        fast = readPlainInvocation(body);
      } catch (err) {
        // (A bad descriptor: refused as hessian.js's path refuses it.)
        expect(err).toBeInstanceOf(DubboProtocolError);
        expect(() => readInvocationByHessian(body)).toThrow((err as Error).message);
        return;
      }
      if (fast === undefined) return;
      plain++;
      expect(readInvocationByHessian(body)).toEqual(fast);
    }), fcParams(2000));
    expect(plain).toBeGreaterThan(150);
    // Chunked strings ('R' chunks, then a final one).
    const long = 'a'.repeat(70_000);
    const body = hessianBody(['2.0.2', long, '1.0', 'echo', 'Ljava/lang/String;', long, { timeout: 3000 }]);
    expect(body.includes(0x52)).toBe(true);
    expect(readPlainInvocation(body)).toEqual(readInvocationByHessian(body));
    expect(readPlainInvocation(body)?.service).toBe(long);
  });

  it('reads attachments that repeat a key as hessian.js does: the last value wins, a null removes the key', () => {
    const head = hessianBody(['2.0.2', 'com.example.Echo', '1.0', 'echo', '']);
    const str = (t: string) => Buffer.from([t.length, ...Buffer.from(t, 'latin1')]);
    const map = (...entries: Buffer[]) => Buffer.concat([Buffer.from('H'), ...entries, Buffer.from('Z')]);
    const NULL = Buffer.from('N');
    const TRUE = Buffer.from('T');
    for (const attachments of [
      map(str('a'), str('x'), str('a'), NULL),
      map(str('a'), str('x'), str('a'), NULL, str('a'), str('y')),
      map(str('a'), str('x'), str('b'), TRUE, str('a'), str('z')),
      map(str('a'), NULL, str('b'), str('y')),
    ]) {
      const body = Buffer.concat([head, attachments]);
      const fast = readPlainInvocation(body);
      expect(fast).toBeDefined();
      expect(fast).toEqual(readInvocationByHessian(body));
    }
  });

  it('reads repeated and nearly repeated plain bodies right (the memo of the string last read at each position)', () => {
    // Few values, so bodies repeat them at the same positions: the same bytes, the same length
    // with other bytes, a prefix, one over the memo's 96 bytes; and bodies of other shapes between.
    const text = fc.constantFrom('com.example.Echo', 'com.example.Echp', 'dom.example.Echo', 'com.example.Ech', '1.0.0', '2.0.2', 'echo', 'x'.repeat(97), 'x'.repeat(96), '');
    const body = fc.record({
      head: fc.array(text, { minLength: 4, maxLength: 4 }),
      args: fc.array(text, { maxLength: 3 }),
      attachments: fc.dictionary(fc.constantFrom('path', 'interface', 'version', 'timeout', 'input'), fc.oneof(text, fc.integer({ min: 0, max: 5000 })), { maxKeys: 4 }),
    }).map((b) => hessianBody([...b.head, b.args.map(() => 'Ljava/lang/String;').join(''), ...b.args, b.attachments]));
    fc.assert(fc.property(fc.array(body, { minLength: 2, maxLength: 10 }), (bodies) => {
      for (const b of bodies) expect(readPlainInvocation(b)).toEqual(readInvocationByHessian(b));
    }), fcParams(500));
  });

  it('reads a frame the same from a copy of its bytes (copyOut: the read buffer is reused)', () => {
    fc.assert(fc.property(anyFrame, fc.nat({ max: 16 }), (a, at) => {
      const raw = Buffer.concat([Buffer.alloc(at, 0xee), a.raw]);
      const { frame, length } = decodeDubboFrame(raw, at, MAX)!;
      expect(frame.raw.length).toBe(length);
      // (The id is read from the bytes when first asked: not asked before the copy.)
      const fields = (f: DubboFrame) => ({ ...f, requestId: f.requestId, body: f.body.toString('hex'), raw: f.raw.toString('hex') });
      const expected = fields(decodeDubboFrame(Buffer.from(raw), at, MAX)!.frame);
      dubboProtocol.setRaw(frame, copyOut(frame.raw));
      raw.fill(0x5a);
      expect(fields(frame)).toEqual(expected);
    }), fcParams(500));
  });

  it('reads bodies written value by value: header strings, Dubbox int, any descriptor and arguments, scalar attachments', () => {
    fc.assert(fc.property(bodyArb, (b) => {
      const f = decodeDubboFrame(requestFrame(b.values), 0, MAX)!.frame;
      expect(readInvocation(f)).toEqual(b.expected);
    }), fcParams(600));
  });

  it('rewrites 64-bit request ids in place, nothing else', () => {
    fc.assert(fc.property(anyFrame, u64, (a, id) => {
      const f = decodeDubboFrame(Buffer.from(a.raw), 0, MAX)!.frame;
      setDubboRequestId(f, id);
      const again = decodeDubboFrame(f.raw, 0, MAX)!.frame;
      expect(again.requestId).toBe(id);
      expect(Buffer.concat([again.raw.subarray(0, 4), again.raw.subarray(12)]).equals(Buffer.concat([a.raw.subarray(0, 4), a.raw.subarray(12)]))).toBe(true);
    }), fcParams(300));
  });

  it('builds heartbeat acks and error replies that this codec and dubbo-remoting decode', () => {
    fc.assert(fc.property(fc.oneof(referenceRequest.map((r) => r.raw), referenceOther.map((r) => r.raw), anyFrame.map((a) => a.raw)), u64, fc.constantFrom(60, 80, 31, 70), fc.boolean(), fc.string({ maxLength: 40 }), (raw, clientId, status, heartbeat, message) => {
      const req = decodeDubboFrame(raw, 0, MAX)!.frame;
      const reply = dubboResponse({ ...req, requestId: clientId }, heartbeat ? DubboStatus.OK : status, heartbeat ? { heartbeat: true } : { message });
      const { frame: f, length } = decodeDubboFrame(reply, 0, MAX)!;
      expect(length).toBe(reply.length);
      expect({ isRequest: f.isRequest, event: f.event, status: f.status, requestId: f.requestId, serialization: f.serialization })
        .toEqual({ isRequest: false, event: heartbeat, status: heartbeat ? 20 : status, requestId: clientId, serialization: req.serialization || 2 });
      if (!heartbeat && req.serialization === 2 && clientId <= BigInt(Number.MAX_SAFE_INTEGER)) {
        const peer = reference.decode(reply, opts);
        expect(BigInt(peer.packetId)).toBe(clientId);
        expect(peer.data?.error?.message).toBe(`shuttle: ${message}`);
      }
    }), fcParams(400));
  });

  it('decodes a stream cut into arbitrary reads (through FrameBuffer, ids rewritten in place) as it decodes whole', () => {
    const valid = fc.array(fc.oneof(referenceRequest.map((r) => r.raw), referenceOther.map((r) => r.raw), bodyArb.map((b) => requestFrame(b.values))), { minLength: 1, maxLength: 6 })
      .map((frames) => ({ frames, bytes: Buffer.concat(frames) }));
    fc.assert(fc.property(valid, cutsArb(20), ({ frames, bytes }, cuts) => {
      const whole = decodeReads([Buffer.from(bytes)]);
      expect(whole.error).toBeUndefined();
      expect(whole.frames.length).toBe(frames.length);
      const split = decodeReads(splitAt(bytes, cuts));
      expect(split.error).toBeUndefined();
      expect(split.pending).toBe(0);
      expect(raws(split)).toEqual(raws(whole));
    }), fcParams(400));
  });

  it('cuts every stream it accepts into the same frames as dubbo-remoting does (no desync upstream)', () => {
    const streams = fc.oneof(frameStream.map((f) => f.bytes), fc.tuple(frameStream, mutationsArb(4)).map(([f, ops]) => mutate(f.bytes, ops)));
    fc.assert(fc.property(streams, fc.oneof(fc.constant(MAX), fc.constant(256 * 1024 * 1024)), (bytes, max) => {
      const lengths: number[] = [];
      let offset = 0;
      try {
        for (;;) {
          const d = decodeDubboFrame(bytes, offset, max);
          if (!d) break;
          lengths.push(d.length);
          offset += d.length;
        }
      } catch (err) {
        if (!(err instanceof DubboProtocolError)) throw err;
      }
      expect(referenceCuts(bytes.subarray(0, offset))).toEqual(lengths);
    }), fcParams(1500));
  });

  it('throws nothing but DubboProtocolError for arbitrary bytes, whole or split, with any frame limit', () => {
    const dubboish = fc.tuple(headerArb, bytesArb(0, 400)).map(([h, rest]) => Buffer.concat([frame(h.flag, h.status, h.id, Buffer.alloc(0)).subarray(0, 12), rest]));
    const garbageBody = bytesArb(0, 300).map((b) => frame(0xc2, 0, 1n, b)); // a two-way hessian2 request
    fc.assert(fc.property(fc.oneof(bytesArb(0, 500), dubboish, anyFrame.map((a) => a.raw), garbageBody), cutsArb(8), fc.oneof(fc.constant(MAX), fc.integer({ min: 0, max: 500 })), (input, cuts, max) => {
      decodeReads([input], max);
      decodeReads(splitAt(input, cuts), max);
    }), fcParams(2000));
  });

  it('throws nothing but DubboProtocolError for mutated streams, and a split decodes as the whole does', () => {
    fc.assert(fc.property(frameStream, mutationsArb(4), cutsArb(12), ({ bytes }, ops, cuts) => {
      const input = mutate(bytes, ops);
      const whole = decodeReads([Buffer.from(input)]);
      const split = decodeReads(splitAt(input, cuts));
      expect(raws(split)).toEqual(raws(whole));
      expect(split.error === undefined).toBe(whole.error === undefined);
    }), fcParams(1500));
  });

  it('reads mutated hessian bodies with nothing but DubboProtocolError', () => {
    fc.assert(fc.property(bodyArb, mutationsArb(6), (b, ops) => {
      const body = mutate(hessianBody(b.values), ops);
      try {
        readInvocation(decodeDubboFrame(frame(0xc2, 0, 1n, body), 0, MAX)!.frame);
      } catch (err) {
        if (!(err instanceof DubboProtocolError)) throw err;
      }
    }), fcParams(2000));
  });

  it('counts any parameter descriptor with nothing but DubboProtocolError, and never more than 255', () => {
    const descChar = fc.constantFrom('I', 'J', 'Z', 'L', ';', '[', '/', 'a', 'V', '');
    fc.assert(fc.property(fc.oneof(fc.string({ maxLength: 300 }), fc.array(descChar, { maxLength: 400 }).map((c) => c.join(''))), (desc) => {
      try {
        expect(countArgs(desc)).toBeLessThanOrEqual(255);
      } catch (err) {
        if (!(err instanceof DubboProtocolError)) throw err;
      }
    }), fcParams(1000));
  });
});
