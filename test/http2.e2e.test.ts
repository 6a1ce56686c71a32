/**
 * HTTP/2 through the real CLI: h2spec conformance, real clients (curl, node:http2, h2load, undici
 * over HTTP/1.1) and upstreams (node:http over HTTP/1.1, node:http2, nginx h2c), translation both
 * ways with trailers, flow control as backpressure, the abuse defences (each counted), and GOAWAY
 * at a drain.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import { connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HpackEncoder } from '../src/codecs/http2/hpack.ts';
import { E, F, frame, RawH2, T, u32 } from './support/h2raw.ts';
import { h2request, httpUpstream, type HttpUpstream } from './support/http.ts';
import { closedPort } from './support/net.ts';
import { startShuttle, testConfig, type ShuttleProcess } from './support/shuttle.ts';
import { eventually } from './support/wait.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Runs a client command without blocking this process (the upstreams live here). */
function run(cmd: string, args: string[], timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => execFile(cmd, args, { encoding: 'utf8', timeout: timeoutMs }, (err, stdout) => (err ? reject(err) : resolve(stdout))));
}

function which(cmd: string): string | undefined {
  try {
    return execFileSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** h2spec: $SHUTTLE_H2SPEC, the shared tools next to the checkout, or the PATH. */
const H2SPEC = [process.env.SHUTTLE_H2SPEC, join(ROOT, '..', 'shared', 'tools', 'h2spec'), which('h2spec')].find((p) => p && existsSync(p));
const H2LOAD = which('h2load');
const NGINX = which('nginx');
const CURL = which('curl');

let shuttle: ShuttleProcess;
let ports: Record<string, number>;
let admin: string;
let h1: HttpUpstream;
let h2: http2.Http2Server;
let h2Port: number;
let nginx: ChildProcess | undefined;
let nginxPort = 0;
const sinkState = { receivedBeforeResume: -1 };

function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

async function startNginx(): Promise<void> {
  if (!NGINX) return;
  const dir = mkdtempSync(join(tmpdir(), 'shuttle-nginx-h2c-'));
  nginxPort = await closedPort();
  writeFileSync(join(dir, 'nginx.conf'), `
worker_processes 1; daemon off; pid ${dir}/nginx.pid; error_log ${dir}/error.log warn;
events { worker_connections 256; }
http {
  access_log off; client_body_temp_path ${dir}; proxy_temp_path ${dir}; fastcgi_temp_path ${dir}; uwsgi_temp_path ${dir}; scgi_temp_path ${dir};
  server { listen 127.0.0.1:${nginxPort} http2; location / { add_header x-upstream nginx; return 200 "nginx h2c $request_uri\\n"; } }
}`);
  nginx = spawn('nginx', ['-c', join(dir, 'nginx.conf')], { stdio: 'ignore' });
  await eventually(() => new Promise<boolean>((resolve) => {
    const s = connect(nginxPort, '127.0.0.1', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  }), (ok) => ok, 10_000);
}

beforeAll(async () => {
  h1 = await httpUpstream('h1', (req, res, body) => {
    const u = new URL(req.url!, 'http://x');
    if (u.pathname.endsWith('/trailers')) {
      res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' });
      res.write('part-1 ');
      res.write('part-2');
      res.addTrailers({ 'x-checksum': 'abc123' });
      return res.end();
    }
    if (u.pathname.endsWith('/echo')) return res.end(`h1 ${req.method} ${body.length} ${sha(body)} te=${req.headers.te ?? '-'} trailer-in=${JSON.stringify(req.trailers)}`);
    if (u.pathname.endsWith('/big')) return res.end(Buffer.alloc(Number(u.searchParams.get('bytes')), 'z'));
    if (u.pathname.endsWith('/slow')) return void setTimeout(() => res.end('slow'), Number(u.searchParams.get('ms') ?? 100));
    res.setHeader('x-upstream', 'h1');
    res.end(`h1 ${req.method} ${req.url} host=${req.headers.host}`);
  });
  h2 = http2.createServer();
  h2.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
    const path = String(headers[':path']);
    stream.on('error', () => {});
    if (path.startsWith('/h2/trailers')) {
      stream.respond({ ':status': 200, 'content-type': 'text/plain' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'x-checksum': 'h2-trailer' }));
      stream.end('h2 body');
      return;
    }
    if (path.startsWith('/h2/sink-paused')) {
      // Reads nothing for a while: the client's upload must stall on flow control, not pile up.
      const chunks: Buffer[] = [];
      let received = 0;
      stream.pause();
      setTimeout(() => {
        sinkState.receivedBeforeResume = received;
        stream.on('data', (d: Buffer) => {
          chunks.push(d);
          received += d.length;
        });
        stream.resume();
      }, 1500);
      stream.on('end', () => {
        const body = Buffer.concat(chunks);
        stream.respond({ ':status': 200 });
        stream.end(`${received} ${sha(body)}`);
      });
      return;
    }
    const chunks: Buffer[] = [];
    stream.on('data', (d: Buffer) => chunks.push(d));
    stream.on('end', () => {
      const body = Buffer.concat(chunks);
      stream.respond({ ':status': 200, 'x-upstream': 'h2', 'x-authority': String(headers[':authority']) });
      stream.end(`h2 ${headers[':method']} ${path} ${body.length} ${sha(body)}`);
    });
  });
  await new Promise<void>((r) => h2.listen(0, '127.0.0.1', r));
  h2Port = (h2.address() as AddressInfo).port;
  await startNginx();

  const routes = [
    { match: { prefix: '/direct' }, direct_response: { status: 200, body: 'direct answer' } },
    { match: { prefix: '/h2/' }, cluster: 'h2' },
    { match: { prefix: '/nginx/' }, cluster: 'nginx' },
    { match: { prefix: '/h1/slow' }, cluster: 'h1', timeout: 0 },
    { match: { prefix: '/' }, cluster: 'h1' },
  ];
  shuttle = startShuttle(testConfig({
    listeners: [
      { name: 'h2direct', address: '127.0.0.1:0', protocol: 'http', access_log: false, http: { codec: 'http2' }, virtual_hosts: [{ name: 'a', domains: ['*'], routes: [{ direct_response: { status: 200, body: 'hello' } }] }] },
      { name: 'h2proxied', address: '127.0.0.1:0', protocol: 'http', access_log: false, http: { codec: 'http2' }, virtual_hosts: [{ name: 'a', domains: ['*'], routes: [{ cluster: 'h1' }] }] },
      { name: 'auto', address: '127.0.0.1:0', protocol: 'http', access_log: false, virtual_hosts: [{ name: 'a', domains: ['*'], routes }] },
      {
        name: 'tight', address: '127.0.0.1:0', protocol: 'http', access_log: false,
        http: { codec: 'http2', stream_idle_timeout: '500ms', http2: { max_concurrent_streams: 5 } },
        virtual_hosts: [{ name: 'a', domains: ['*'], routes }],
      },
      {
        name: 'limits', address: '127.0.0.1:0', protocol: 'http', access_log: false,
        http: { codec: 'http2', max_request_body_bytes: 1000, max_headers: 10 },
        virtual_hosts: [{ name: 'a', domains: ['*'], routes }],
      },
    ],
    clusters: [
      { name: 'h1', hosts: [h1.address] },
      { name: 'h2', protocol: 'http2', hosts: [`127.0.0.1:${h2Port}`] },
      { name: 'nginx', protocol: 'http2', hosts: [`127.0.0.1:${nginxPort || 1}`] },
    ],
  }), { threads: 2 });
  const ready = await shuttle.ready();
  ports = Object.fromEntries(Object.entries(ready.listeners).map(([k, v]) => [k, v.port]));
  admin = ready.admin;
});

afterAll(async () => {
  await shuttle?.stop();
  await h1?.close();
  h2?.close();
  nginx?.kill();
});

async function counter(name: string, listener: string): Promise<number> {
  const text = await (await fetch(`${admin}/metrics`)).text();
  const m = new RegExp(`^shuttle_listener_${name}_total\\{listener="${listener}"\\} (\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

describe('HTTP/2 conformance (h2spec)', () => {
  it.skipIf(!H2SPEC)('passes every h2spec case on an HTTP/2 listener with a direct response, and with a proxied route', async () => {
    for (const name of ['h2direct', 'h2proxied']) {
      const out = await new Promise<string>((resolve) => execFile(H2SPEC!, ['-h', '127.0.0.1', '-p', String(ports[name]), '-o', '5'], { timeout: 120_000 }, (_e, stdout) => resolve(stdout)));
      const summary = /(\d+) tests, (\d+) passed, (\d+) skipped, (\d+) failed/.exec(out);
      expect({ name, summary: summary?.[0], failures: out.includes('Failures:') ? out.slice(out.indexOf('Failures:'), out.indexOf('Failures:') + 2000) : '' }).toEqual({ name, summary: '146 tests, 146 passed, 0 skipped, 0 failed', failures: '' });
    }
  }, 300_000);
});

describe('HTTP/2 with real clients and upstreams', () => {
  it.skipIf(!CURL)('serves curl --http2-prior-knowledge on the shared HTTP/1.1 + HTTP/2 port, to an HTTP/1.1 upstream', async () => {
    const out = await run('curl', ['-s', '--http2-prior-knowledge', '-D', '-', '-d', 'posted-body', `http://127.0.0.1:${ports.auto}/h1/echo`]);
    expect(out).toMatch(/^HTTP\/2 200/);
    expect(out).toContain(`h1 POST 11 ${sha(Buffer.from('posted-body'))}`);
    const h1out = await run('curl', ['-s', '--http1.1', `http://127.0.0.1:${ports.auto}/h1/x`]);
    expect(h1out).toBe('h1 GET /h1/x host=127.0.0.1:' + ports.auto);
  });

  it('translates HTTP/2 → HTTP/1.1: :authority becomes Host, chunked trailers become HTTP/2 trailers', async () => {
    const session = http2.connect(`http://127.0.0.1:${ports.auto}`);
    try {
      const r = await h2request(session, { ':path': '/h1/hello', ':authority': 'example.test' });
      expect(r.status).toBe(200);
      expect(r.body.toString()).toBe('h1 GET /h1/hello host=example.test');
      const t = await h2request(session, { ':path': '/h1/trailers' });
      expect(t.body.toString()).toBe('part-1 part-2');
      expect(t.trailers['x-checksum']).toBe('abc123');
      const big = randomBytes(3 * 1024 * 1024 + 7);
      const e = await h2request(session, { ':path': '/h1/echo', ':method': 'POST' }, big);
      expect(e.body.toString()).toMatch(new RegExp(`^h1 POST ${big.length} ${sha(big)}`));
    } finally {
      session.close();
    }
  });

  it('translates HTTP/1.1 → HTTP/2: Host becomes :authority, HTTP/2 trailers become chunked trailers', async () => {
    const agent = new Agent();
    try {
      const res = await request(`http://127.0.0.1:${ports.auto}/h2/trailers`, { dispatcher: agent, headers: { te: 'trailers' } });
      expect(res.statusCode).toBe(200);
      expect(await res.body.text()).toBe('h2 body');
      expect(res.trailers['x-checksum']).toBe('h2-trailer');
      const body = randomBytes(200_000);
      const post = await request(`http://127.0.0.1:${ports.auto}/h2/upload`, { dispatcher: agent, method: 'POST', body, headers: { host: 'h1client.test' } });
      expect(post.headers['x-authority']).toBe('h1client.test');
      expect(await post.body.text()).toBe(`h2 POST /h2/upload ${body.length} ${sha(body)}`);
    } finally {
      await agent.close();
    }
  });

  it('proxies HTTP/2 to an HTTP/2 upstream (node:http2), many streams on one connection', async () => {
    const session = http2.connect(`http://127.0.0.1:${ports.auto}`);
    try {
      const results = await Promise.all(Array.from({ length: 200 }, (_, i) => h2request(session, { ':path': `/h2/n${i}` })));
      expect(results.map((r) => r.body.toString().split(' ')[2])).toEqual(Array.from({ length: 200 }, (_, i) => `/h2/n${i}`));
    } finally {
      session.close();
    }
  });

  it.skipIf(!NGINX)('proxies to nginx as an h2c upstream', async () => {
    const session = http2.connect(`http://127.0.0.1:${ports.auto}`);
    try {
      const r = await h2request(session, { ':path': '/nginx/ping' });
      expect(r.status).toBe(200);
      expect(r.headers['x-upstream']).toBe('nginx');
      expect(r.body.toString()).toBe('nginx h2c /nginx/ping\n');
    } finally {
      session.close();
    }
  });

  it.skipIf(!H2LOAD)('serves h2load: 2,000 requests on 4 connections, 10 streams each, all 2xx', async () => {
    const out = await run('h2load', ['-n', '2000', '-c', '4', '-m', '10', `http://127.0.0.1:${ports.auto}/h1/load`]);
    expect(out).toMatch(/requests: 2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed, 0 errored/);
    expect(out).toMatch(/status codes: 2000 2xx/);
  });
});

describe('HTTP/2 flow control and backpressure', () => {
  it('stalls an upload on flow control while the upstream does not read, then carries it intact', async () => {
    const session = http2.connect(`http://127.0.0.1:${ports.auto}`);
    try {
      const body = randomBytes(64 * 1024 * 1024);
      const r = await h2request(session, { ':path': '/h2/sink-paused', ':method': 'POST' }, body);
      const [received, digest] = r.body.toString().split(' ');
      expect({ received: Number(received), digest }).toEqual({ received: body.length, digest: sha(body) });
      // While the upstream read nothing, only windows' worth crossed (client → proxy → upstream),
      // not the 64 MiB the client had to send.
      expect(sinkState.receivedBeforeResume).toBeLessThan(8 * 1024 * 1024);
    } finally {
      session.close();
    }
  }, 60_000);

  it('times out a stream whose client never opens its window (zero-window stall)', async () => {
    // The client's SETTINGS_INITIAL_WINDOW_SIZE is 0: no response DATA may be sent to it.
    const c = await RawH2.connect(ports.tight, [[4, 0]]);
    try {
      c.send(c.request(1, '/h1/big?bytes=100000'));
      const before = await counter('http2_stalled_stream', 'tight');
      const rst = await c.until((f) => f.type === T.RST_STREAM && f.stream === 1, 10_000);
      expect(rst?.payload.readUInt32BE(0)).toBe(E.CANCEL);
      await eventually(() => counter('http2_stalled_stream', 'tight'), (n) => n === before + 1);
    } finally {
      c.close();
    }
  });
});

describe('HTTP/2 abuse defences', () => {
  it('refuses streams beyond max_concurrent_streams with REFUSED_STREAM', async () => {
    const before = await counter('http2_refused_stream', 'tight');
    const c = await RawH2.connect(ports.tight);
    try {
      for (let i = 0; i < 6; i++) c.send(c.request(1 + 2 * i, '/h1/slow?ms=1000'));
      const rst = await c.until((f) => f.type === T.RST_STREAM && f.stream === 11);
      expect(rst?.payload.readUInt32BE(0)).toBe(E.REFUSED_STREAM);
      await eventually(() => counter('http2_refused_stream', 'tight'), (n) => n === before + 1);
    } finally {
      c.close();
    }
  });

  it('sends GOAWAY ENHANCE_YOUR_CALM to a client that resets most of its streams (rapid reset)', async () => {
    const before = await counter('http2_rapid_reset', 'auto');
    const c = await RawH2.connect(ports.auto);
    for (let i = 0; i < 400 && !c.closed; i++) {
      const id = 1 + 2 * i;
      c.send(c.request(id, '/h1/slow?ms=1000'), frame(T.RST_STREAM, 0, id, u32(E.CANCEL)));
    }
    const ga = await c.goAway();
    expect(ga?.code).toBe(E.ENHANCE_YOUR_CALM);
    await eventually(() => counter('http2_rapid_reset', 'auto'), (n) => n === before + 1);
    c.close();
  });

  it('sends GOAWAY to a CONTINUATION flood', async () => {
    const before = await counter('http2_continuation_flood', 'auto');
    const c = await RawH2.connect(ports.auto);
    const junk = Buffer.alloc(1000, 0x41);
    c.send(frame(T.HEADERS, 0, 1, c.hpack.encode([':method', 'GET', ':scheme', 'http', ':authority', 'a', ':path', '/'])));
    for (let i = 0; i < 200 && !c.closed; i++) c.send(frame(T.CONTINUATION, 0, 1, junk));
    const ga = await c.goAway();
    expect(ga?.code).toBe(E.ENHANCE_YOUR_CALM);
    await eventually(() => counter('http2_continuation_flood', 'auto'), (n) => n === before + 1);
    c.close();
  });

  it('answers an HPACK bomb (a header list over the limit) with 431 on that stream and keeps the connection', async () => {
    const before = await counter('http2_header_list_too_large', 'auto');
    const c = await RawH2.connect(ports.auto);
    try {
      // One 4 KB entry into the dynamic table (a literal with incremental indexing, new name
      // "x-bomb", value length 4000 = 7f a1 1e), then referenced 100 times (index 62, the newest
      // entry): 400 KB decoded from a 4 KB block.
      const pseudo = c.hpack.encode([':method', 'GET', ':scheme', 'http', ':authority', 'a', ':path', '/h1/x']);
      const entry = Buffer.concat([Buffer.from([0x40, 6]), Buffer.from('x-bomb'), Buffer.from([0x7f, 0xa1, 0x1e]), Buffer.alloc(4000, 0x62)]);
      const refs = Buffer.alloc(100, 0xbe);
      c.send(frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 1, Buffer.concat([pseudo, entry, refs])));
      const head = await c.until((f) => f.type === T.HEADERS && f.stream === 1);
      // :status 431 is not in HPACK's static table: literal ":status" (index 8 name) "431".
      expect(head?.payload.includes(Buffer.from('431'))).toBe(true);
      // (The client's own encoder does not know the entry added by hand: a table-less encoder
      // starts the next block by emptying the table, so nothing refers to it.)
      const plain = new HpackEncoder({ maxTableSize: 0 }).encode([':method', 'GET', ':scheme', 'http', ':authority', 'a', ':path', '/direct']);
      c.send(frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 3, plain));
      const ok = await c.until((f) => f.type === T.DATA && f.stream === 3);
      expect(ok?.payload.toString()).toBe('direct answer');
      await eventually(() => counter('http2_header_list_too_large', 'auto'), (n) => n === before + 1);
    } finally {
      c.close();
    }
  });

  it.each([
    ['SETTINGS', () => frame(T.SETTINGS, 0, 0)],
    ['PING', () => frame(T.PING, 0, 0, Buffer.alloc(8))],
    ['PRIORITY', () => frame(T.PRIORITY, 0, 3, Buffer.from([0, 0, 0, 1, 16]))],
  ])('sends GOAWAY to a %s flood', async (_name, make) => {
    const before = await counter('http2_control_frame_flood', 'auto');
    const c = await RawH2.connect(ports.auto);
    const one = make();
    const burst = Buffer.concat(Array.from({ length: 500 }, () => one));
    for (let i = 0; i < 20 && !c.closed; i++) c.send(burst);
    const ga = await c.goAway();
    expect(ga?.code).toBe(E.ENHANCE_YOUR_CALM);
    await eventually(() => counter('http2_control_frame_flood', 'auto'), (n) => n > before);
    c.close();
  });

  it('sends GOAWAY to a flood of empty DATA frames', async () => {
    const before = await counter('http2_empty_frame_flood', 'auto');
    const c = await RawH2.connect(ports.auto);
    c.send(c.request(1, '/h1/echo', { method: 'POST', body: true }));
    for (let i = 0; i < 100 && !c.closed; i++) c.send(frame(T.DATA, 0, 1));
    const ga = await c.goAway();
    expect(ga?.code).toBe(E.ENHANCE_YOUR_CALM);
    await eventually(() => counter('http2_empty_frame_flood', 'auto'), (n) => n === before + 1);
    c.close();
  });

  it('kept serving throughout: no worker restarted', async () => {
    const workers = (await (await fetch(`${admin}/workers`)).json()) as { restarts: number };
    expect(workers.restarts).toBe(0);
  });
});

describe('HTTP/2 request limits', () => {
  it('answers 413 to a body over max_request_body_bytes (declared or streamed) and 431 past max_headers; the connection goes on', async () => {
    const session = http2.connect(`http://127.0.0.1:${ports.limits}`);
    try {
      const declared = await h2request(session, { ':method': 'POST', ':path': '/body', 'content-length': '2000' }, Buffer.alloc(2000, 1));
      expect(declared.status).toBe(413);
      // No content-length: the body is cut off once it passes the limit.
      const before = h1.requests.length;
      const streamed = await new Promise<number>((resolve, reject) => {
        const req = session.request({ ':method': 'POST', ':path': '/streamed' });
        req.on('response', (h) => resolve(Number(h[':status'])));
        req.on('error', reject);
        req.write(Buffer.alloc(800, 1));
        setTimeout(() => req.end(Buffer.alloc(800, 2)), 50);
      });
      expect(streamed).toBe(413);
      const fields: Record<string, string> = { ':path': '/many' };
      for (let i = 0; i < 12; i++) fields[`x-field-${i}`] = 'v';
      expect((await h2request(session, fields)).status).toBe(431);
      const ok = await h2request(session, { ':method': 'POST', ':path': '/small' }, Buffer.alloc(1000, 3));
      expect(ok.status).toBe(200);
      expect(h1.requests.slice(before).some((r) => r.url === '/streamed' && r.body.length === 1600)).toBe(false);
    } finally {
      session.close();
    }
  });
});

describe('HTTP/2 drain', () => {
  it('sends GOAWAY at SIGTERM, finishes the stream in flight, then exits', async () => {
    const session = http2.connect(`http://127.0.0.1:${ports.auto}`);
    let goaway = false;
    session.on('goaway', () => (goaway = true));
    session.on('error', () => {});
    const inFlight = h2request(session, { ':path': '/h1/slow?ms=700' });
    await new Promise((r) => setTimeout(r, 200));
    shuttle.signal('SIGTERM');
    const r = await inFlight;
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('slow');
    await eventually(async () => goaway, (g) => g, 5_000);
    expect(await shuttle.waitForExit(15_000)).toBe(0);
    session.destroy();
  });
});
