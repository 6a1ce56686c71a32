/** Real upstream servers and clients on 127.0.0.1 for end-to-end tests. */
import { createHash } from 'node:crypto';
import net from 'node:net';

export interface Upstream {
  port: number;
  address: string;
  connections: number;
  close(): Promise<void>;
}

function listen(server: net.Server, port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
  });
}

function track(server: net.Server, port: number): Upstream {
  const sockets = new Set<net.Socket>();
  const up: Upstream = {
    port,
    address: `127.0.0.1:${port}`,
    connections: 0,
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
  server.on('connection', (s) => {
    up.connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return up;
}

/** Echoes every byte; ends its side when the client ends its side. */
export async function echoServer(port = 0): Promise<Upstream> {
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    s.pipe(s);
  });
  return track(server, await listen(server, port));
}

/** Reads until the client half-closes, then answers "<name> <bytes> <sha256>" and closes. */
export async function hashServer(name: string): Promise<Upstream> {
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    const hash = createHash('sha256');
    let bytes = 0;
    s.on('data', (d) => {
      bytes += d.length;
      hash.update(d);
    });
    s.on('end', () => s.end(`${name} ${bytes} ${hash.digest('hex')}`));
  });
  return track(server, await listen(server));
}

/** Writes `name` as soon as a client connects, then echoes. */
export async function namedServer(name: string, port = 0): Promise<Upstream> {
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    s.write(`${name}\n`);
    s.pipe(s);
  });
  return track(server, await listen(server, port));
}

/** A loopback port with nothing listening on it (connects are refused). */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  const port = await listen(server);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A client connection that collects what it receives. */
export class Client {
  readonly socket: net.Socket;
  received = Buffer.alloc(0);
  closed: Promise<boolean>;
  private readonly waiters: (() => void)[] = [];

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => {
      this.received = Buffer.concat([this.received, d]);
      for (const w of this.waiters.splice(0)) w();
    });
    socket.on('error', () => {});
    this.closed = new Promise((resolve) => socket.on('close', (hadError) => {
      for (const w of this.waiters.splice(0)) w();
      resolve(hadError);
    }));
  }

  static connect(port: number, host = '127.0.0.1'): Promise<Client> {
    return new Promise((resolve, reject) => {
      // Not half-open: like most clients, it closes when the server closes.
      const s = net.connect({ port, host });
      s.once('connect', () => resolve(new Client(s)));
      s.once('error', reject);
    });
  }

  /** Waits until at least `n` bytes have arrived (or the socket closes). */
  async until(n: number, timeoutMs = 10_000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.received.length < n) {
      if (this.socket.destroyed) throw new Error(`socket closed after ${this.received.length} of ${n} bytes`);
      if (Date.now() > deadline) throw new Error(`timed out after ${this.received.length} of ${n} bytes`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 200).unref();
      });
    }
    return this.received;
  }

  /** Sends `text` and waits for the same number of echoed bytes. */
  async echo(text: string): Promise<string> {
    const before = this.received.length;
    this.socket.write(text);
    const got = await this.until(before + Buffer.byteLength(text));
    return got.subarray(before, before + Buffer.byteLength(text)).toString();
  }
}

/** Sends `payload`, half-closes, and returns everything received until the server closes. */
export function sendAndCollect(port: number, payload: Buffer, timeoutMs = 20_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error('sendAndCollect timed out'));
    }, timeoutMs);
    s.on('connect', () => s.end(payload));
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    s.on('end', () => {
      clearTimeout(timer);
      s.end();
      resolve(Buffer.concat(chunks));
    });
  });
}

export function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}
