/**
 * The protocol registry: each protocol Shuttle serves registers how to recognise it from the
 * first bytes a client sends (and its ALPN names, for TLS); a listener serving several protocols
 * (`auto`, or `http` serving HTTP/1.1 and HTTP/2 on one port) looks the connection up here.
 *
 *   0x16 0x03                a TLS handshake (terminated, then looked up again inside)
 *   0x01 / 0x02              SOFA Bolt v1 / v2
 *   0xda 0xbb                Dubbo
 *   "PRI * HTTP/2.0\r\n…"     HTTP/2 with prior knowledge (h2c)
 *   an HTTP method token     HTTP/1.x
 */
import type net from 'node:net';
import { available, readInto } from '../net/socket-io.ts';
import { Deadline, deadlines, type DeadlineOwner } from '../stream/deadlines.ts';
import { copyOut } from './frame-buffer.ts';

export type ProtocolName = 'tls' | 'http1' | 'http2' | 'bolt' | 'dubbo';

export interface ProtocolDefinition {
  readonly name: ProtocolName;
  /** TLS ALPN protocol ids that select it. */
  readonly alpn: readonly string[];
  /** true / false from the first bytes, or undefined while more are needed to tell. */
  match(first: Buffer): boolean | undefined;
}

/**
 * The first line of the HTTP/2 preface: enough to tell (an HTTP/1 request line with version
 * HTTP/2.0 is an error either way); the HTTP/2 codec checks the rest and answers a broken preface
 * with GOAWAY PROTOCOL_ERROR, as RFC 9113 §3.4 asks.
 */
const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n');

function prefix(first: Buffer, expected: Buffer): boolean | undefined {
  const n = Math.min(first.length, expected.length);
  if (first.compare(expected, 0, n, 0, n) !== 0) return false;
  return n === expected.length ? true : undefined;
}

export const PROTOCOLS: readonly ProtocolDefinition[] = [
  // A TLS handshake record (then the protocol inside is told by ALPN, or by its own first bytes).
  { name: 'tls', alpn: [], match: (b) => (b[0] !== 0x16 ? false : b.length < 2 ? undefined : b[1] === 0x03) },
  { name: 'bolt', alpn: [], match: (b) => b[0] === 0x01 || b[0] === 0x02 },
  { name: 'dubbo', alpn: [], match: (b) => (b[0] !== 0xda ? false : b.length < 2 ? undefined : b[1] === 0xbb) },
  { name: 'http2', alpn: ['h2'], match: (b) => prefix(b, H2_PREFACE) },
  {
    name: 'http1',
    alpn: ['http/1.1', 'http/1.0'],
    match: (b) => {
      // A method token and a space; empty lines may come first (RFC 9112 §2.2).
      let i = 0;
      while (i < b.length && (b[i] === 13 || b[i] === 10) && i < 8) i++;
      const start = i;
      while (i < b.length && i - start <= 20 && b[i] >= 0x21 && b[i] <= 0x7e && b[i] !== 0x20) i++;
      if (i === b.length) return i - start <= 20 ? undefined : false;
      return b[i] === 0x20 && i > start;
    },
  },
];

/**
 * The protocol of a connection among `allowed`, from its first bytes, in registry order: a
 * protocol that cannot tell yet holds the decision (the bytes "PRI " could begin an HTTP/1
 * method or the HTTP/2 preface). Undefined while more bytes are needed, 'unknown' when none matches.
 */
export function classify(first: Buffer, allowed: readonly ProtocolName[]): ProtocolName | 'unknown' | undefined {
  if (first.length === 0) return undefined;
  for (const p of PROTOCOLS) {
    if (!allowed.includes(p.name)) continue;
    const m = p.match(first);
    if (m !== false) return m === true ? p.name : undefined;
  }
  return 'unknown';
}

/**
 * Reads until the protocol is known (or `timeoutMs`), then hands over the socket and the bytes
 * read. `done` runs inside the read that told, and must start the protocol's reading at once
 * (every codec's start() does) or destroy the socket.
 */
export function detectProtocol(socket: net.Socket, allowed: readonly ProtocolName[], timeoutMs: number, done: (p: ProtocolName | 'unknown', first: Buffer) => void): void {
  // A TLS handshake goes to Node's TLS, which reads the socket its own way: through 'data'.
  if (!allowed.includes('tls') && available(socket) && socket.readableLength === 0) {
    new Detection(socket, allowed, timeoutMs, done);
    return;
  }
  let seen: Buffer = Buffer.alloc(0);
  const timer = setTimeout(() => finish('unknown'), timeoutMs);
  const onData = (chunk: Buffer) => {
    seen = seen.length ? Buffer.concat([seen, chunk]) : chunk;
    const p = classify(seen, allowed);
    if (p) finish(p);
  };
  const finish = (p: ProtocolName | 'unknown') => {
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('close', onClose);
    socket.pause();
    done(p, seen);
  };
  const onClose = () => finish('unknown');
  socket.on('data', onData);
  socket.once('close', onClose);
  socket.on('error', ignoreError);
}

/** The first reads of the connections being told apart land here (each copied out: a few bytes). */
const detectBuffer = Buffer.allocUnsafeSlow(16 * 1024);

/**
 * Detection on a plain socket: reads into detectBuffer (net/socket-io.ts), under a deadline
 * (stream/deadlines.ts), instead of a 'data' listener (a Buffer per read, then a pause, which
 * stops the socket's reading in the kernel's poll set, and a resume by the codec) and a Node
 * timer. The codec that takes over switches the socket to its own buffer between two reads;
 * reading never stops. Measured (`bench:conn` http-close, bench/RESULTS.md): 2–3 µs less proxy
 * CPU per connection, within noise; an `http1`-only listener costs 5–18 µs less than `auto`, so
 * most of what detection costs is the work around it, not the reading.
 */
class Detection implements DeadlineOwner {
  private readonly socket: net.Socket;
  private readonly allowed: readonly ProtocolName[];
  private readonly done: (p: ProtocolName | 'unknown', first: Buffer) => void;
  private readonly deadline = new Deadline(this); // (deadlineExpired: the time allowed ran out)
  private seen: Buffer = NOTHING_SEEN;
  private finished = false;
  private readonly onClose = () => this.finish('unknown');

  constructor(socket: net.Socket, allowed: readonly ProtocolName[], timeoutMs: number, done: (p: ProtocolName | 'unknown', first: Buffer) => void) {
    this.socket = socket;
    this.allowed = allowed;
    this.done = done;
    readInto(socket, detectBuffer, (bytes) => this.onRead(bytes));
    socket.once('close', this.onClose);
    socket.on('error', ignoreError);
    this.deadline.arm(deadlines.queue(timeoutMs));
    socket.resume();
  }

  private onRead(bytes: number): void {
    if (this.finished) return;
    // (The bytes are the shared buffer's until the next read: the codec gets a copy.)
    const chunk = detectBuffer.subarray(0, bytes);
    this.seen = this.seen.length === 0 ? copyOut(chunk) : Buffer.concat([this.seen, chunk]);
    const p = classify(this.seen, this.allowed);
    if (p) this.finish(p);
  }

  deadlineExpired(): void {
    this.finish('unknown');
  }

  private finish(p: ProtocolName | 'unknown'): void {
    if (this.finished) return;
    this.finished = true;
    this.deadline.cancel();
    this.socket.off('close', this.onClose);
    this.done(p, this.seen);
  }
}

const NOTHING_SEEN = Buffer.alloc(0);

/**
 * The listener that stays on the socket after detection: a function of the module, not a closure
 * of this call, which would keep the whole detection scope (bytes read, timer, callbacks) alive
 * for the connection's life (~0.8 KB per idle connection, measured).
 */
function ignoreError(): void {}
