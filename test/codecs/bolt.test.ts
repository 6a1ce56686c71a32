/**
 * Bolt framing against frames made by sofa-bolt-node, the reference Node implementation that
 * sofa-rpc-node clients and servers use.
 */
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { BoltCmd, BoltProtocolError, BoltStatus, BoltType, boltResponse, decodeBoltFrame, parseHeaderMap, setRequestId } from '../../src/codecs/bolt/frame.ts';

const require = createRequire(import.meta.url);
const protocol = require('sofa-bolt-node/lib/protocol') as {
  requestEncode(id: number, req: object, options: object): Buffer;
  responseEncode(id: number, res: object, options: object): Buffer;
  heartbeatEncode(id: number, hb: object, options: object): Buffer;
};

const request = { serverSignature: 'com.example.EchoService:1.0', methodName: 'echo', args: [{ $class: 'java.lang.String', $: 'hello' }], timeout: 3000, requestProps: { service: 'com.example.EchoService:1.0' } };
const optsFor = (protocolType: 'bolt' | 'bolt2', crcEnable = false) => ({ protocolType, codecType: 'hessian2', boltVersion: protocolType === 'bolt' ? 1 : 2, crcEnable, sentReqs: new Map(), classCache: new Map() });

describe('Bolt framing', () => {
  for (const [protocolType, crc] of [['bolt', false], ['bolt2', false], ['bolt2', true]] as const) {
    it(`decodes a ${protocolType}${crc ? ' + CRC' : ''} request from sofa-bolt-node, whole and byte by byte`, () => {
      const raw = protocol.requestEncode(42, request, optsFor(protocolType, crc));
      const { frame, length } = decodeBoltFrame(raw, 0, 1 << 20)!;
      expect(length).toBe(raw.length);
      expect(frame).toMatchObject({ proto: protocolType === 'bolt' ? 1 : 2, type: BoltType.REQUEST, cmdCode: BoltCmd.REQUEST, requestId: 42, timeout: 3000, codec: 1 });
      expect(frame.className).toBe('com.alipay.sofa.rpc.core.request.SofaRequest');
      expect(parseHeaderMap(frame.header).get('service')).toBe('com.example.EchoService:1.0');
      expect(frame.content.length).toBeGreaterThan(0);
      for (let cut = 0; cut < raw.length; cut++) expect(decodeBoltFrame(raw.subarray(0, cut), 0, 1 << 20)).toBeUndefined();
    });
  }

  it('decodes back-to-back frames and responses', () => {
    const a = protocol.requestEncode(1, request, optsFor('bolt'));
    const b = protocol.responseEncode(1, { isError: false, appResponse: { $class: 'java.lang.String', $: 'hi' } }, optsFor('bolt'));
    const both = Buffer.concat([a, b]);
    const first = decodeBoltFrame(both, 0, 1 << 20)!;
    const second = decodeBoltFrame(both, first.length, 1 << 20)!;
    expect(second.frame).toMatchObject({ type: BoltType.RESPONSE, cmdCode: BoltCmd.RESPONSE, requestId: 1, status: BoltStatus.SUCCESS });
    expect(first.length + second.length).toBe(both.length);
  });

  it('rewrites request ids as unsigned 32-bit, keeping the CRC valid', () => {
    const raw = protocol.requestEncode(7, request, optsFor('bolt2', true));
    const { frame } = decodeBoltFrame(Buffer.from(raw), 0, 1 << 20)!;
    setRequestId(frame, 2 ** 32 - 1);
    const again = decodeBoltFrame(frame.raw, 0, 1 << 20)!; // CRC still checks
    expect(again.frame.requestId).toBe(4294967295);
    setRequestId(frame, 2 ** 32); // wraps to 0, not 2^32 truncated into garbage
    expect(decodeBoltFrame(frame.raw, 0, 1 << 20)!.frame.requestId).toBe(0);
  });

  it('builds heartbeat acks and error responses a Bolt peer can decode', () => {
    const hb = protocol.heartbeatEncode(9, {}, optsFor('bolt'));
    const { frame } = decodeBoltFrame(hb, 0, 1 << 20)!;
    expect(frame.cmdCode).toBe(BoltCmd.HEARTBEAT);
    const ack = decodeBoltFrame(boltResponse(frame, BoltStatus.SUCCESS, { heartbeat: true }), 0, 1 << 20)!.frame;
    expect(ack).toMatchObject({ type: BoltType.RESPONSE, cmdCode: BoltCmd.HEARTBEAT, requestId: 9, status: 0 });
    const req = decodeBoltFrame(protocol.requestEncode(5, request, optsFor('bolt2', true)), 0, 1 << 20)!.frame;
    const timeout = decodeBoltFrame(boltResponse(req, BoltStatus.TIMEOUT), 0, 1 << 20)!.frame;
    expect(timeout).toMatchObject({ proto: 2, type: BoltType.RESPONSE, cmdCode: BoltCmd.RESPONSE, requestId: 5, status: BoltStatus.TIMEOUT });
  });

  // Regression: the reference encoder writes ids as signed 32-bit and threw for 2^31 and over,
  // out of the proxy's read callback, crashing the worker.
  it('builds error responses for request ids of 2^31 and over', () => {
    const req = decodeBoltFrame(Buffer.from(protocol.requestEncode(5, request, optsFor('bolt'))), 0, 1 << 20)!.frame;
    setRequestId(req, 0x80000001);
    const reply = decodeBoltFrame(boltResponse(req, BoltStatus.TIMEOUT, { message: 'x' }), 0, 1 << 20)!.frame;
    expect(reply).toMatchObject({ requestId: 0x80000001, status: BoltStatus.TIMEOUT });
  });

  // Regression: SOFABolt and sofa-bolt-node read class/header/content lengths as signed and agree
  // only on switch values 0 and 1; a frame they would cut elsewhere could smuggle a second call.
  it('refuses length fields with the top bit set and unknown switch flags', () => {
    const v1 = () => Buffer.from(protocol.requestEncode(1, request, optsFor('bolt')));
    for (const [offset, bytes] of [[14, 2], [16, 2], [18, 4]] as const) {
      const raw = v1(); // classLen at 14, headerLen at 16, contentLen at 18 (v1 request)
      raw[offset] |= 0x80;
      expect(() => decodeBoltFrame(raw, 0, 1 << 30), `field at ${offset} (${bytes} bytes)`).toThrow(/out of range/);
    }
    const v2 = Buffer.from(protocol.requestEncode(1, request, optsFor('bolt2', true)));
    v2[11] = 0x03; // switch byte of a v2 request
    expect(() => decodeBoltFrame(v2, 0, 1 << 20)).toThrow(/switch flags 0x3/);
  });

  it('rejects an unknown protocol byte, an oversize frame and a bad CRC', () => {
    expect(() => decodeBoltFrame(Buffer.from('GET / HTTP/1.1\r\n'), 0, 1 << 20)).toThrow(BoltProtocolError);
    const raw = protocol.requestEncode(1, request, optsFor('bolt'));
    expect(() => decodeBoltFrame(raw, 0, 64)).toThrow(/over the limit of 64/);
    const crc = Buffer.from(protocol.requestEncode(1, request, optsFor('bolt2', true)));
    crc[crc.length - 1] ^= 0xff;
    expect(() => decodeBoltFrame(crc, 0, 1 << 20)).toThrow(/CRC32 mismatch/);
  });
});
