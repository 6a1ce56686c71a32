/** Real HTTP upstreams and a raw-socket client for end-to-end tests. */
import http from 'node:http';
import type http2 from 'node:http2';
import net from 'node:net';

export interface HttpUpstream {
  name: string;
  port: number;
  address: string;
  server: http.Server;
  requests: { method: string; url: string; headers: http.IncomingHttpHeaders; body: Buffer }[];
  connections: number;
  close(): Promise<void>;
}

export type Handler = (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => void;

/** A node:http server that records requests; by default answers 200 with its name and the URL. */
export async function httpUpstream(name: string, handler?: Handler, port = 0): Promise<HttpUpstream> {
  const up = { name, requests: [], connections: 0 } as unknown as HttpUpstream;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      up.requests.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      if (handler) return handler(req, res, body);
      res.setHeader('x-upstream', name);
      res.end(`${name} ${req.method} ${req.url}`);
    });
  });
  server.keepAliveTimeout = 30_000;
  server.on('connection', () => up.connections++);
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  up.server = server;
  up.port = (server.address() as net.AddressInfo).port;
  up.address = `127.0.0.1:${up.port}`;
  up.close = () => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
  return up;
}

/** Sends raw bytes and collects the reply until the server closes (or timeoutMs). */
export function rawExchange(port: number, payload: string | Buffer, timeoutMs = 5_000): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let text = '';
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ text, closed: false });
    }, timeoutMs);
    s.on('connect', () => s.write(payload));
    s.on('data', (d) => (text += d.toString('latin1')));
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ text, closed: true });
    });
  });
}

/** Splits a raw stream of HTTP/1.1 responses with Content-Length bodies. */
export function splitResponses(text: string): { status: number; headers: Record<string, string>; body: string }[] {
  const out: { status: number; headers: Record<string, string>; body: string }[] = [];
  let rest = text;
  while (rest.length > 0) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) break;
    const lines = rest.slice(0, end).split('\r\n');
    const headers: Record<string, string> = {};
    for (const l of lines.slice(1)) {
      const c = l.indexOf(':');
      headers[l.slice(0, c).toLowerCase()] = l.slice(c + 1).trim();
    }
    const len = Number(headers['content-length'] ?? 0);
    out.push({ status: Number(lines[0].split(' ')[1]), headers, body: rest.slice(end + 4, end + 4 + len) });
    rest = rest.slice(end + 4 + len);
  }
  return out;
}

/** One request on a node:http2 session; resolves with status, headers, body and trailers. */
export function h2request(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: Buffer): Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: Buffer; trailers: http2.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = session.request(headers, { endStream: body === undefined });
    let trailers: http2.IncomingHttpHeaders = {};
    let head: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    req.on('response', (h) => (head = h));
    req.on('trailers', (t) => (trailers = t));
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => resolve({ status: Number(head[':status']), headers: head, body: Buffer.concat(chunks), trailers }));
    req.on('error', reject);
    if (body !== undefined) req.end(body);
  });
}
