/**
 * Dubbo framing against frames made by dubbo-remoting (the Dubbo protocol of sofa-rpc-node).
 */
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { DubboProtocolError, DubboStatus, countArgs, decodeDubboFrame, dubboClientId, dubboRequestIdLow, dubboResponse, readInvocation, restoreDubboId, setDubboRequestId, setDubboRequestIdU32 } from '../../src/codecs/dubbo/frame.ts';
import { dubboProtocol } from '../../src/proxy/rpc/dubbo.ts';

const require = createRequire(import.meta.url);
const hessian = require('hessian.js') as { encode(v: unknown, version: string): Buffer };
const protocol = require('dubbo-remoting/lib/protocol') as {
  requestEncode(id: number, data: object, options: object): Buffer;
  heartbeatEncode(id: number, hb: object, options: object): Buffer;
  decode(buf: Buffer, options: object): { packetId: number; packetType: string; data: { error?: Error; appResponse?: unknown } | null };
};
const opts = { codecType: 'hessian2', classMap: {} };
const call = {
  serverSignature: 'com.example.OrderService:1.0.0',
  methodName: 'find',
  args: [{ $class: 'java.lang.String', $: 'order-1' }, { $class: 'int', $: 7 }],
  requestProps: { group: 'blue', tenant: 'acme' },
};

describe('Dubbo framing', () => {
  it('decodes a request from dubbo-remoting and reads service, version, method and attachments', () => {
    const raw = protocol.requestEncode(123, call, opts);
    const { frame, length } = decodeDubboFrame(raw, 0, 1 << 20)!;
    expect(length).toBe(raw.length);
    expect(frame).toMatchObject({ isRequest: true, twoWay: true, event: false, serialization: 2, requestId: 123n });
    const inv = readInvocation(frame);
    expect(inv).toMatchObject({ service: 'com.example.OrderService', version: '1.0.0', method: 'find' });
    expect(inv.attachments).toMatchObject({ group: 'blue', tenant: 'acme', path: 'com.example.OrderService' });
    for (let cut = 0; cut < raw.length; cut++) expect(decodeDubboFrame(raw.subarray(0, cut), 0, 1 << 20)).toBeUndefined();
  });

  it('recognises heartbeats and builds an ack and error responses dubbo-remoting decodes', () => {
    const hb = decodeDubboFrame(protocol.heartbeatEncode(9, {}, opts), 0, 1 << 20)!.frame;
    expect(hb.event).toBe(true);
    const ack = decodeDubboFrame(dubboResponse(hb, DubboStatus.OK, { heartbeat: true }), 0, 1 << 20)!.frame;
    expect(ack).toMatchObject({ isRequest: false, event: true, status: 20, requestId: 9n });
    const req = decodeDubboFrame(protocol.requestEncode(44, call, opts), 0, 1 << 20)!.frame;
    const err = protocol.decode(dubboResponse(req, DubboStatus.SERVICE_NOT_FOUND, { message: 'no route' }), opts);
    expect(err.packetId).toBe(44);
    expect(err.data?.error).toBeInstanceOf(Error);
    expect(err.data?.error?.message).toBe('shuttle: no route');
  });

  it('rewrites 64-bit request ids', () => {
    const { frame } = decodeDubboFrame(Buffer.from(protocol.requestEncode(5, call, opts)), 0, 1 << 20)!;
    setDubboRequestId(frame, 2n ** 64n - 1n);
    expect(decodeDubboFrame(frame.raw, 0, 1 << 20)!.frame.requestId).toBe(18446744073709551615n);
  });

  it('swaps in the proxy\'s u32 ids and restores every client id, 0 to 2^64-1, without BigInt arithmetic', () => {
    const { frame } = decodeDubboFrame(Buffer.from(protocol.requestEncode(5, call, opts)), 0, 1 << 20)!;
    const ids = [0n, 1n, 255n, 2n ** 31n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 32n + 7n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n, 0x1234_5678_9abc_def0n];
    for (const id of ids) {
      setDubboRequestId(frame, id); // what a client sent
      const clientId = dubboClientId(frame);
      expect(BigInt(clientId)).toBe(id);
      for (const upstream of [0, 1, 0x7fffffff, 0x80000000, 0xffffffff]) {
        setDubboRequestIdU32(frame, upstream);
        expect(frame.requestId).toBe(BigInt(upstream));
        expect(dubboRequestIdLow(decodeDubboFrame(frame.raw, 0, 1 << 20)!.frame)).toBe(upstream);
        expect(decodeDubboFrame(frame.raw, 0, 1 << 20)!.frame.requestId).toBe(BigInt(upstream));
      }
      restoreDubboId(frame, clientId);
      expect(frame.requestId).toBe(id);
      expect(decodeDubboFrame(frame.raw, 0, 1 << 20)!.frame.requestId).toBe(id);
      // An error reply carries the client's id too.
      const reply = decodeDubboFrame(dubboProtocol.errorReply(frame, clientId, 'no_route', 'x'), 0, 1 << 20)!.frame;
      expect(reply.requestId).toBe(id);
    }
  });

  it('reads attachments by lower-cased name, in any case they were sent, version from the invocation', () => {
    const callOf = (props: Record<string, string>) => dubboProtocol.call(decodeDubboFrame(protocol.requestEncode(1, { ...call, requestProps: props }, opts), 0, 1 << 20)!.frame);
    const plain = callOf({ timeout: '3000', group: 'blue' });
    expect([plain.header('timeout'), plain.header('group'), plain.header('version'), plain.header('path')]).toEqual(['3000', 'blue', '1.0.0', 'com.example.OrderService']);
    // Names of Object.prototype are not attachments.
    for (const n of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) expect(plain.header(n)).toBeUndefined();
    const mixed = callOf({ Timeout: '250', 'X-Tenant': 'acme', group: 'blue' });
    expect([mixed.header('timeout'), mixed.header('x-tenant'), mixed.header('group'), mixed.header('Timeout')]).toEqual(['250', 'acme', 'blue', undefined]);
    expect(dubboProtocol.timeoutOf(decodeDubboFrame(protocol.requestEncode(1, { ...call, requestProps: { Timeout: '250' } }, opts), 0, 1 << 20)!.frame, mixed)).toBe(250);
  });

  it('counts JVM parameter descriptors', () => {
    expect(countArgs('')).toBe(0);
    expect(countArgs('Ljava/lang/String;I')).toBe(2);
    expect(countArgs('[J[[Ljava/util/Map;Z')).toBe(3);
  });

  /** A request frame whose hessian2 body is exactly `values`, one after another. */
  function requestWithBody(values: unknown[]): Buffer {
    const body = Buffer.concat(values.map((v) => hessian.encode(v, '2.0')));
    const raw = Buffer.from(protocol.requestEncode(1, call, opts).subarray(0, 16));
    raw.writeUInt32BE(body.length, 12);
    return Buffer.concat([raw, body]);
  }

  // Regressions: a crafted body made the proxy stringify shared nested lists (exponential) or
  // re-count a huge descriptor per argument (quadratic), stalling the worker.
  it('reads only string attachments, caps parameters, and refuses non-string header fields', () => {
    const nested = [[1, 2], [3, 4]];
    const inv = readInvocation(decodeDubboFrame(requestWithBody(['2.0.2', 'com.example.S', '1.0', 'm', 'I', 7, { group: 'blue', bomb: nested, timeout: 3000, on: true }]), 0, 1 << 20)!.frame);
    expect(inv).toMatchObject({ service: 'com.example.S', method: 'm' });
    expect(inv.attachments).toEqual({ group: 'blue', timeout: '3000', on: 'true' });
    // Dubbox: an int before the descriptor.
    const dubbox = readInvocation(decodeDubboFrame(requestWithBody(['2.0.2', 'com.example.S', '1.0', 'm', -1, 'I', 7, { group: 'x' }]), 0, 1 << 20)!.frame);
    expect(dubbox).toMatchObject({ service: 'com.example.S', attachments: { group: 'x' } });
    const many = 'I'.repeat(256);
    expect(() => readInvocation(decodeDubboFrame(requestWithBody(['2.0.2', 'S', '1.0', 'm', many, ...Array(256).fill(0), {}]), 0, 1 << 20)!.frame)).toThrow(/more than 255 parameters/);
    expect(() => readInvocation(decodeDubboFrame(requestWithBody(['2.0.2', ['not', 'a', 'string'], '1.0', 'm', '', {}]), 0, 1 << 20)!.frame)).toThrow(/service is not a string/);
  });

  it('rejects a bad magic, an oversize frame and an undecodable body', () => {
    expect(() => decodeDubboFrame(Buffer.from('GET / HTTP/1.1'), 0, 1 << 20)).toThrow(DubboProtocolError);
    const raw = protocol.requestEncode(1, call, opts);
    expect(() => decodeDubboFrame(raw, 0, 32)).toThrow(/over the limit/);
    // A body cut short (its length field agreeing): the hessian reader runs out of bytes.
    const cut = Buffer.from(raw.subarray(0, 16 + 12));
    cut.writeUInt32BE(12, 12);
    expect(() => readInvocation(decodeDubboFrame(cut, 0, 1 << 20)!.frame)).toThrow(DubboProtocolError);
  });
});
