/**
 * Protocol detection for `protocol: auto` listeners, from the first bytes a client sends:
 *
 *   0x01 / 0x02            SOFA Bolt v1 / v2
 *   0xda 0xbb              Dubbo
 *   "PRI * HTTP/2.0"       HTTP/2 prior knowledge
 *   an HTTP method token   HTTP/1.x
 */
import type net from 'node:net';

export type DetectedProtocol = 'bolt' | 'dubbo' | 'http2' | 'http1' | 'unknown';

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n');
const METHOD = /^[A-Z]{3,10} /;

export function classify(first: Buffer): DetectedProtocol | undefined {
  if (first.length === 0) return undefined;
  const b = first[0];
  if (b === 0x01 || b === 0x02) return 'bolt';
  if (b === 0xda) return first.length < 2 ? undefined : first[1] === 0xbb ? 'dubbo' : 'unknown';
  const head = first.subarray(0, H2_PREFACE.length);
  if (H2_PREFACE.subarray(0, head.length).equals(head)) return head.length < H2_PREFACE.length ? undefined : 'http2';
  const text = first.toString('latin1', 0, Math.min(first.length, 12));
  if (METHOD.test(text)) return 'http1';
  if (/^[A-Z]{0,10}$/.test(text)) return undefined; // a method still arriving
  return 'unknown';
}

/** Reads until the protocol is known (or `timeoutMs`), then hands over the socket and the bytes read. */
export function detectProtocol(socket: net.Socket, timeoutMs: number, done: (p: DetectedProtocol, first: Buffer) => void): void {
  let seen: Buffer = Buffer.alloc(0);
  const timer = setTimeout(() => finish('unknown'), timeoutMs);
  const onData = (chunk: Buffer) => {
    seen = seen.length ? Buffer.concat([seen, chunk]) : chunk;
    const p = classify(seen);
    if (p) finish(p);
  };
  const finish = (p: DetectedProtocol) => {
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('close', onClose);
    socket.pause();
    done(p, seen);
  };
  const onClose = () => finish('unknown');
  socket.on('data', onData);
  socket.once('close', onClose);
  socket.on('error', () => {});
}
