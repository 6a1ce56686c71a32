/**
 * A raw HTTP/2 client for abuse tests: it writes whatever frames a test asks for (floods,
 * resets, malformed blocks) and records every frame the server sends back. Header blocks are
 * made with Shuttle's HPACK encoder (an independent peer, node:http2, is used elsewhere).
 */
import net from 'node:net';
import { HpackEncoder } from '../../src/codecs/http2/hpack.ts';

export const T = { DATA: 0, HEADERS: 1, PRIORITY: 2, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;
export const F = { END_STREAM: 1, ACK: 1, END_HEADERS: 4 } as const;
export const E = { NO_ERROR: 0, PROTOCOL_ERROR: 1, CANCEL: 8, REFUSED_STREAM: 7, ENHANCE_YOUR_CALM: 11 } as const;

export interface Frame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

export function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
}

export function settings(pairs: [number, number][] = []): Buffer {
  const p = Buffer.alloc(6 * pairs.length);
  pairs.forEach(([id, v], i) => {
    p.writeUInt16BE(id, i * 6);
    p.writeUInt32BE(v, i * 6 + 2);
  });
  return frame(T.SETTINGS, 0, 0, p);
}

export function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

export class RawH2 {
  readonly socket: net.Socket;
  readonly frames: Frame[] = [];
  readonly hpack = new HpackEncoder();
  closed = false;
  private buf = Buffer.alloc(0);
  private readonly waiters: (() => void)[] = [];

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      while (this.buf.length >= 9) {
        const len = this.buf.readUIntBE(0, 3);
        if (this.buf.length < 9 + len) break;
        this.frames.push({ type: this.buf[3], flags: this.buf[4], stream: this.buf.readUInt32BE(5) & 0x7fffffff, payload: this.buf.subarray(9, 9 + len) });
        this.buf = this.buf.subarray(9 + len);
      }
      this.wake();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  /** Connects, sends the preface and SETTINGS (and acknowledges the server's). */
  static async connect(port: number, clientSettings: [number, number][] = []): Promise<RawH2> {
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => resolve(s));
      s.once('error', reject);
    });
    const c = new RawH2(socket);
    socket.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), settings(clientSettings)]));
    await c.until((f) => f.type === T.SETTINGS && (f.flags & F.ACK) === 0);
    socket.write(frame(T.SETTINGS, F.ACK, 0));
    return c;
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  send(...frames: Buffer[]): boolean {
    return this.socket.write(Buffer.concat(frames));
  }

  /** A HEADERS frame for a request (END_HEADERS; END_STREAM unless `body`). */
  request(stream: number, path: string, opts: { method?: string; body?: boolean; extra?: string[] } = {}): Buffer {
    const block = this.hpack.encode([':method', opts.method ?? 'GET', ':scheme', 'http', ':authority', 'a', ':path', path, ...(opts.extra ?? [])]);
    return frame(T.HEADERS, F.END_HEADERS | (opts.body ? 0 : F.END_STREAM), stream, block);
  }

  /** Waits for a frame matching `pred` (seen or to come) or the connection's close. */
  async until(pred: (f: Frame) => boolean, timeoutMs = 10_000): Promise<Frame | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const f = this.frames.find(pred);
      if (f) return f;
      if (this.closed) return undefined;
      if (Date.now() > deadline) throw new Error(`no such frame in ${timeoutMs}ms; got ${JSON.stringify(this.frames.map((x) => [x.type, x.flags, x.stream]))}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 100).unref();
      });
    }
  }

  /** The GOAWAY the server sent (waits for it or the close). */
  async goAway(timeoutMs = 10_000): Promise<{ lastStream: number; code: number } | undefined> {
    const f = await this.until((x) => x.type === T.GOAWAY, timeoutMs);
    return f ? { lastStream: f.payload.readUInt32BE(0) & 0x7fffffff, code: f.payload.readUInt32BE(4) } : undefined;
  }

  close(): void {
    this.socket.destroy();
  }
}
