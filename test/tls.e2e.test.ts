/**
 * TLS through the real CLI, with certificates made by openssl at test time (test/support/certs.ts)
 * and real clients: curl, openssl s_client, undici, node:https, node:tls, @grpc/grpc-js, and
 * sofa-rpc-node behind a TLS wrapper. Termination with SNI and ALPN, mTLS with identities for
 * routing, the access log and x-forwarded-client-cert, passthrough by SNI, TLS to upstreams with
 * SAN verification, resumption across workers, and certificate rotation under load.
 */
import { execFile, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, renameSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import https from 'node:https';
import { createRequire } from 'node:module';
import net from 'node:net';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makePki, type Pki } from './support/certs.ts';
import { echoClient, echoServer, grpc, unary, type EchoServer } from './support/grpc.ts';
import { httpUpstream, type HttpUpstream } from './support/http.ts';
import { loop } from './support/load.ts';
import { closedPort } from './support/net.ts';
import { runCli, ShuttleProcess, testConfig, writeTempConfig } from './support/shuttle.ts';
import { eventually } from './support/wait.ts';

const SPIFFE_CLIENT = 'spiffe://cluster.local/ns/default/sa/client';
const SPIFFE_OTHER = 'spiffe://cluster.local/ns/default/sa/other';
const SPIFFE_BACKEND = 'spiffe://cluster.local/ns/default/sa/backend';

let pki: Pki;
let shuttle: ShuttleProcess;
let ports: Record<string, number>;
let admin: string;
let configFile: string;
let app: HttpUpstream;
let echo: EchoServer;
const backends: { close(): void }[] = [];
let boltServer: ReturnType<typeof spawn>;

function run(cmd: string, args: string[], input?: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { encoding: 'utf8', timeout: 20_000 }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr }));
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** A TLS server (its cert says who it is) that greets with `name`, for passthrough and upstream TLS. */
function tlsGreeter(name: string, cert: string): Promise<number> {
  return new Promise((resolve) => {
    const server = tls.createServer({ cert: pki.read(`${cert}.pem`), key: pki.read(`${cert}.key`) }, (s) => {
      s.on('error', () => {});
      s.end(`${name}\n`);
    });
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
    backends.push({ close: () => server.close() });
  });
}

/** An HTTPS upstream presenting `cert`. */
function httpsUpstream(name: string, cert: string): Promise<number> {
  return new Promise((resolve) => {
    const server = https.createServer({ cert: pki.read(`${cert}.pem`), key: pki.read(`${cert}.key`) }, (req, res) => res.end(`${name} ${req.url}`));
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
    backends.push({ close: () => server.close() });
  });
}

/** An HTTPS upstream that speaks HTTP/2 and HTTP/1.1 (ALPN picks) and says which it was asked in. */
function h2OrH1Upstream(cert: string): Promise<number> {
  return new Promise((resolve) => {
    const server = http2.createSecureServer({ cert: pki.read(`${cert}.pem`), key: pki.read(`${cert}.key`), allowHTTP1: true }, (req, res) => res.end(`version ${req.httpVersion}`));
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
    backends.push({ close: () => server.close() });
  });
}

/** The certificate a TLS listener presents for `servername` (and the ALPN it picked). */
function presented(port: number, servername: string, alpn?: string[]): Promise<{ cert: X509Certificate; alpn: string | false | null; resumed: boolean }> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ port, host: '127.0.0.1', servername, ca: pki.read('ca.pem'), ALPNProtocols: alpn }, () => {
      const cert = new X509Certificate(s.getPeerCertificate().raw);
      resolve({ cert, alpn: s.alpnProtocol, resumed: s.isSessionReused() });
      s.destroy();
    });
    s.on('error', reject);
  });
}

beforeAll(async () => {
  pki = makePki();
  pki.issue('a', { cn: 'a.test', sans: 'DNS:a.test,DNS:*.b.test' });
  pki.issue('a-rsa', { cn: 'a.test', sans: 'DNS:a.test,DNS:*.b.test', rsa: true });
  pki.issue('c', { cn: 'c.test', sans: 'DNS:c.test' });
  pki.issue('client', { cn: 'client', sans: `URI:${SPIFFE_CLIENT}` });
  pki.issue('other-client', { cn: 'other', sans: `URI:${SPIFFE_OTHER}` });
  pki.issue('stranger', { cn: 'stranger', sans: `URI:${SPIFFE_CLIENT}`, ca: 'other-ca' });
  pki.issue('backend', { cn: 'backend', sans: `DNS:backend.test,URI:${SPIFFE_BACKEND}` });
  pki.issue('impostor', { cn: 'impostor', sans: 'DNS:backend.test,URI:spiffe://cluster.local/ns/default/sa/impostor' });
  // The certificate files the https listener serves, rotated by the last test.
  copyFileSync(pki.path('a.pem'), pki.path('live.pem'));
  copyFileSync(pki.path('a.key'), pki.path('live.key'));

  app = await httpUpstream('app', (req, res) => res.end(`app ${req.url} xfcc=${req.headers['x-forwarded-client-cert'] ?? '-'} proto=${req.headers['x-forwarded-proto']}`));
  echo = await echoServer('grpc');
  const [greetA, greetC, good, impostor] = [await tlsGreeter('A', 'a'), await tlsGreeter('C', 'c'), await httpsUpstream('backend', 'backend'), await httpsUpstream('impostor', 'impostor')];
  const both = await h2OrH1Upstream('backend');
  const boltPort = await closedPort();
  boltServer = spawn(process.execPath, [fileURLToPath(new URL('./support/bolt-server.ts', import.meta.url)), String(boltPort), 'bolt'], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve) => boltServer.stdout!.on('data', (d) => String(d).includes('ready') && resolve()));

  const cert = (name: string) => ({ cert: pki.path(`${name}.pem`), key: pki.path(`${name}.key`) });
  const up = [{ cluster: 'app' }];
  configFile = writeTempConfig(testConfig({
    listeners: [
      { name: 'https', address: '127.0.0.1:0', protocol: 'http', tls: { certificates: [{ cert: pki.path('live.pem'), key: pki.path('live.key') }, cert('a-rsa'), cert('c')] }, virtual_hosts: [{ name: 'all', domains: ['*'], routes: up }] },
      {
        name: 'mtls', address: '127.0.0.1:0', protocol: 'http',
        tls: { certificates: [cert('a')], client_ca: pki.path('ca.pem'), require_client_cert: true, forward_client_cert: 'sanitize_set' },
        virtual_hosts: [{ name: 'all', domains: ['*'], routes: [
          { match: { prefix: '/', peer_identity: { exact: SPIFFE_CLIENT } }, cluster: 'app' },
          { direct_response: { status: 403, body: 'not for you' } },
        ] }],
      },
      { name: 'grpc', address: '127.0.0.1:0', protocol: 'http', tls: { certificates: [cert('a')], client_ca: pki.path('ca.pem') }, virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/', peer_identity: { present: true } }, cluster: 'grpc' }] }] },
      { name: 'passthrough', address: '127.0.0.1:0', protocol: 'tcp', sni_routes: [{ server_names: ['a.test', '*.b.test'], cluster: 'greet-a' }, { server_names: ['c.test'], cluster: 'greet-c' }] },
      { name: 'plain', address: '127.0.0.1:0', protocol: 'http', virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/good' }, cluster: 'backend' }, { match: { prefix: '/auto-h1' }, cluster: 'auto-h1' }, { match: { prefix: '/auto-h2' }, cluster: 'auto-h2' }, { match: { prefix: '/bad' }, cluster: 'impostor', retry_policy: { retry_on: ['connect-failure'], num_retries: 0 } }] }] },
      { name: 'auto', address: '127.0.0.1:0', protocol: 'auto', tls: { certificates: [cert('a')] }, rpc: { routes: [{ cluster: 'bolt' }] }, virtual_hosts: [{ name: 'all', domains: ['*'], routes: up }] },
    ],
    clusters: [
      { name: 'app', hosts: [app.address] },
      { name: 'grpc', protocol: 'http2', hosts: [echo.address] },
      { name: 'greet-a', hosts: [`127.0.0.1:${greetA}`] },
      { name: 'greet-c', hosts: [`127.0.0.1:${greetC}`] },
      { name: 'backend', hosts: [`127.0.0.1:${good}`], tls: { sni: 'backend.test', ca: pki.path('ca.pem'), verify_subject_alt_name: [SPIFFE_BACKEND] } },
      { name: 'impostor', hosts: [`127.0.0.1:${impostor}`], tls: { sni: 'backend.test', ca: pki.path('ca.pem'), verify_subject_alt_name: [SPIFFE_BACKEND] } },
      { name: 'bolt', hosts: [`127.0.0.1:${boltPort}`] },
      { name: 'auto-h1', protocol: 'auto', hosts: [`127.0.0.1:${good}`], tls: { sni: 'backend.test', ca: pki.path('ca.pem') } },
      { name: 'auto-h2', protocol: 'auto', hosts: [`127.0.0.1:${both}`], tls: { sni: 'backend.test', ca: pki.path('ca.pem') } },
    ],
  }));
  shuttle = new ShuttleProcess(configFile, { threads: 2 });
  ({ ports, admin } = await shuttle.ports());
}, 60_000);

afterAll(async () => {
  await shuttle?.stop();
  await app?.close();
  await echo?.close();
  for (const b of backends) b.close();
  boltServer?.kill('SIGKILL');
});

/** The /metrics lines that start with `prefix` (what a failed wait prints). */
async function metricLines(prefix: string): Promise<string> {
  return (await (await fetch(`${admin}/metrics`)).text()).split('\n').filter((l) => l.startsWith(prefix)).join('\n');
}

const caOnly = () => new Agent({ connect: { ca: pki.read('ca.pem'), servername: 'a.test' } });

describe('TLS config checks', () => {
  it('refuses a missing file, a key that does not match its certificate, and an expired certificate, naming each path', async () => {
    pki.issue('expired', { cn: 'old.test', sans: 'DNS:old.test', startdate: '20200101000000Z', enddate: '20200102000000Z' });
    const cfg = testConfig({
      listeners: [{ name: 'x', address: '127.0.0.1:0', protocol: 'http', tls: { certificates: [
        { cert: pki.path('missing.pem'), key: pki.path('a.key') },
        { cert: pki.path('a.pem'), key: pki.path('c.key') },
        { cert: pki.path('expired.pem'), key: pki.path('expired.key') },
      ] }, virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ direct_response: { status: 200 } }] }] }],
      clusters: [{ name: 'c', hosts: ['127.0.0.1:1'] }],
    });
    const r = await runCli(['validate', '-c', writeTempConfig(cfg)]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/listeners\[0\]\.tls\.certificates\[0\]\.cert: cannot read .*missing\.pem/);
    expect(r.stderr).toMatch(/listeners\[0\]\.tls\.certificates\[1\]\.cert: .*the key .*c\.key does not match this certificate/);
    expect(r.stderr).toMatch(/listeners\[0\]\.tls\.certificates\[2\]\.cert: .*the certificate expired on 2020-01-02/);
    expect(r.stderr).not.toMatch(/BEGIN/); // no key material in errors
  });
});

describe('TLS termination', () => {
  it('serves curl over HTTPS with ALPN http/1.1 and h2', async () => {
    const url = `https://a.test:${ports.https}/x`;
    const resolve = `a.test:${ports.https}:127.0.0.1`;
    const h1 = await run('curl', ['-s', '--http1.1', '--cacert', pki.path('ca.pem'), '--resolve', resolve, '-w', ' %{http_version}', url]);
    expect(h1.out).toBe('app /x xfcc=- proto=https 1.1');
    const h2 = await run('curl', ['-s', '--http2', '--cacert', pki.path('ca.pem'), '--resolve', resolve, '-w', ' %{http_version}', url]);
    expect(h2.out).toBe('app /x xfcc=- proto=https 2');
  });

  it('picks the certificate by SNI (exact and wildcard names), and ALPN as the client offers', async () => {
    expect((await presented(ports.https, 'c.test')).cert.subject).toBe('CN=c.test');
    expect((await presented(ports.https, 'x.b.test')).cert.subject).toBe('CN=a.test');
    expect((await presented(ports.https, 'a.test', ['h2'])).alpn).toBe('h2');
    expect((await presented(ports.https, 'a.test', ['http/1.1'])).alpn).toBe('http/1.1');
    const s = await run('openssl', ['s_client', '-connect', `127.0.0.1:${ports.https}`, '-servername', 'c.test', '-alpn', 'h2', '-CAfile', pki.path('ca.pem')], '');
    expect(s.out).toMatch(/subject=CN = c\.test/);
    expect(s.out).toMatch(/ALPN protocol: h2/);
    expect(s.out).toMatch(/Verify return code: 0 \(ok\)/);
  });

  it('chooses RSA or ECDSA by what the client supports', async () => {
    const keyType = (sigalgs: string) => new Promise<string | undefined>((resolve, reject) => {
      const s = tls.connect({ port: ports.https, host: '127.0.0.1', servername: 'a.test', ca: pki.read('ca.pem'), sigalgs, maxVersion: 'TLSv1.2' }, () => {
        resolve(new X509Certificate(s.getPeerCertificate().raw).publicKey.asymmetricKeyType);
        s.destroy();
      });
      s.on('error', reject);
    });
    expect(await keyType('RSA-PSS+SHA256:RSA+SHA256')).toBe('rsa');
    expect(await keyType('ECDSA+SHA256')).toBe('ec');
  });

  it('serves undici and node:https', async () => {
    const agent = caOnly();
    const res = await request(`https://127.0.0.1:${ports.https}/u`, { dispatcher: agent });
    expect(await res.body.text()).toBe('app /u xfcc=- proto=https');
    await agent.close();
    const body = await new Promise<string>((resolve, reject) => {
      https.get({ host: '127.0.0.1', port: ports.https, path: '/n', servername: 'a.test', ca: pki.read('ca.pem') }, (r) => {
        let b = '';
        r.on('data', (d) => (b += d));
        r.on('end', () => resolve(b));
      }).on('error', reject);
    });
    expect(body).toBe('app /n xfcc=- proto=https');
  });
});

describe('mTLS', () => {
  const mtlsGet = (client?: string) => {
    const args = ['-s', '--cacert', pki.path('ca.pem'), '--resolve', `a.test:${ports.mtls}:127.0.0.1`];
    if (client) args.push('--cert', pki.path(`${client}.pem`), '--key', pki.path(`${client}.key`));
    return run('curl', [...args, `https://a.test:${ports.mtls}/id`]);
  };

  it('refuses a client without a certificate, or with one from another CA, and counts why', async () => {
    expect((await mtlsGet()).code).not.toBe(0);
    expect((await mtlsGet('stranger')).code).not.toBe(0);
    await eventually(() => metricLines('shuttle_listener_ssl_handshake_error_total{listener="mtls"'), (m) =>
      /reason="no_client_cert"\} [1-9]/.test(m) && /reason="bad_client_cert"\} [1-9]/.test(m));
  });

  it('passes a verified client on, routes on its SPIFFE identity, forwards it in x-forwarded-client-cert and logs it', async () => {
    const ok = await mtlsGet('client');
    expect(ok.out).toMatch(new RegExp(`^app /id xfcc=Hash=[0-9a-f]{64};Subject="CN=client";URI=${SPIFFE_CLIENT.replace(/\//g, '\\/')} proto=https$`));
    const other = await mtlsGet('other-client');
    expect(other.out).toBe('not for you');
    const line = await shuttle.waitForLog((l) => l.msg === 'access' && l.listener === 'mtls' && l.path === '/id' && l.status === 200);
    expect(line.tls).toMatchObject({ sni: 'a.test', peer: SPIFFE_CLIENT });
  });

  it('serves gRPC over TLS with a client certificate (@grpc/grpc-js)', async () => {
    const creds = grpc.credentials.createSsl(Buffer.from(pki.read('ca.pem')), Buffer.from(pki.read('client.key')), Buffer.from(pki.read('client.pem')));
    const EchoService = echoClient('127.0.0.1:1').constructor;
    const client = new EchoService(`127.0.0.1:${ports.grpc}`, creds, { 'grpc.ssl_target_name_override': 'a.test' });
    try {
      const { msg } = await unary(client, { text: 'over-tls' });
      expect(msg.text).toBe('grpc:over-tls');
    } finally {
      client.close();
    }
    // Without a client certificate the route (peer_identity present) does not match.
    const anon = new EchoService(`127.0.0.1:${ports.grpc}`, grpc.credentials.createSsl(Buffer.from(pki.read('ca.pem'))), { 'grpc.ssl_target_name_override': 'a.test' });
    try {
      const err = await unary(anon, { text: 'anon' }).catch((e) => e);
      expect(err.code).toBe(grpc.status.UNIMPLEMENTED);
    } finally {
      anon.close();
    }
  });

  it('refuses an unverifiable certificate where one is optional, so a forged identity never routes', async () => {
    // The "stranger" certificate claims the client's SPIFFE identity but is signed by another CA.
    const EchoService = echoClient('127.0.0.1:1').constructor;
    const creds = grpc.credentials.createSsl(Buffer.from(pki.read('ca.pem')), Buffer.from(pki.read('stranger.key')), Buffer.from(pki.read('stranger.pem')));
    const forged = new EchoService(`127.0.0.1:${ports.grpc}`, creds, { 'grpc.ssl_target_name_override': 'a.test' });
    try {
      const err = await unary(forged, { text: 'forged' }, { deadlineMs: 10_000 }).catch((e) => e);
      expect(err.code).toBe(grpc.status.UNAVAILABLE);
    } finally {
      forged.close();
    }
    await eventually(() => metricLines('shuttle_listener_ssl_handshake_error_total{listener="grpc"'), (m) => /reason="bad_client_cert"\} [1-9]/.test(m));
  });
});

describe('TLS passthrough by SNI', () => {
  it('reaches the cluster the server name picks, with the client\'s TLS intact end to end', async () => {
    const greet = (servername: string) => new Promise<{ text: string; subject: string }>((resolve, reject) => {
      const s = tls.connect({ port: ports.passthrough, host: '127.0.0.1', servername, ca: pki.read('ca.pem') });
      let text = '';
      s.on('data', (d) => (text += d));
      s.on('end', () => resolve({ text, subject: new X509Certificate(s.getPeerCertificate().raw).subject }));
      s.on('error', reject);
    });
    expect(await greet('a.test')).toEqual({ text: 'A\n', subject: 'CN=a.test' });
    expect(await greet('c.test')).toEqual({ text: 'C\n', subject: 'CN=c.test' });
    expect(await greet('z.b.test')).toEqual({ text: 'A\n', subject: 'CN=a.test' });
  });
});

describe('TLS to upstreams', () => {
  it('protocol auto: the upstream\'s ALPN answer picks HTTP/2 or HTTP/1.1', async () => {
    const h2 = await request(`http://127.0.0.1:${ports.plain}/auto-h2`);
    expect(await h2.body.text()).toBe('version 2.0');
    const h1 = await request(`http://127.0.0.1:${ports.plain}/auto-h1`);
    expect(await h1.body.text()).toBe('backend /auto-h1');
    // Later requests reuse the answer (no probe each time).
    for (let i = 0; i < 3; i++) expect(await (await request(`http://127.0.0.1:${ports.plain}/auto-h2`)).body.text()).toBe('version 2.0');
  });

  it('verifies the upstream certificate and its SAN: a match is served, a mismatch is a counted 503', async () => {
    const good = await fetch(`http://127.0.0.1:${ports.plain}/good`);
    expect(await good.text()).toBe('backend /good');
    const bad = await fetch(`http://127.0.0.1:${ports.plain}/bad`);
    expect(bad.status).toBe(503);
    expect(bad.headers.get('x-shuttle-error')).toBe('SHUTTLE_E_UPSTREAM_CONNECT_FAILED');
    await eventually(() => metricLines('shuttle_host_upstream_cx_ssl_fail_total{cluster="impostor"'), (m) => /\} [1-9]/.test(m));
  });
});

describe('auto listener with TLS', () => {
  it('terminates TLS and serves HTTP (by ALPN) and Bolt (by its bytes) on one port', async () => {
    const agent = caOnly();
    const res = await request(`https://127.0.0.1:${ports.auto}/on-auto`, { dispatcher: agent });
    expect(await res.body.text()).toBe('app /on-auto xfcc=- proto=https');
    await agent.close();
    // sofa-rpc-node speaks plain Bolt: a local TLS wrapper (what a sidecar in front of it does).
    const wrapper = net.createServer((plain) => {
      const secure = tls.connect({ port: ports.auto, host: '127.0.0.1', servername: 'a.test', ca: pki.read('ca.pem') });
      plain.pipe(secure).pipe(plain);
      plain.on('error', () => secure.destroy());
      secure.on('error', () => plain.destroy());
    });
    await new Promise<void>((r) => wrapper.listen(0, '127.0.0.1', r));
    const { RpcClient } = createRequire(import.meta.url)('sofa-rpc-node').client;
    const quiet = { info() {}, warn() {}, debug() {}, error() {} };
    const client = new RpcClient({ logger: quiet });
    try {
      await client.ready();
      const consumer = client.createConsumer({ interfaceName: 'com.example.Echo', serverHost: `127.0.0.1:${(wrapper.address() as net.AddressInfo).port}` });
      await consumer.ready();
      expect(await consumer.invoke('echo', ['over-tls'], { responseTimeout: 5_000 })).toBe('bolt:over-tls');
      const line = await shuttle.waitForLog((l) => l.msg === 'access' && l.listener === 'auto' && l.protocol === 'bolt');
      expect(line.tls).toMatchObject({ version: 'TLSv1.3', peer: null });
    } finally {
      client.close();
      wrapper.close();
    }
  });
});

describe('TLS sessions and rotation', () => {
  it('resumes sessions across worker threads (session tickets shared by the workers)', async () => {
    type W = { workers: { slot: number; total_connections: number }[] };
    const totals = async () => Object.fromEntries(((await (await fetch(`${admin}/workers`)).json()) as W).workers.map((w) => [w.slot, w.total_connections]));
    const before = await totals();
    let session: Buffer | undefined;
    const resumed: boolean[] = [];
    for (let i = 0; i < 8; i++) {
      resumed.push(await new Promise<boolean>((resolve, reject) => {
        const s = tls.connect({ port: ports.https, host: '127.0.0.1', servername: 'a.test', ca: pki.read('ca.pem'), session, maxVersion: 'TLSv1.2' }, () => {
          const r = s.isSessionReused();
          session = s.getSession();
          s.end();
          resolve(r);
        });
        s.on('error', reject);
      }));
    }
    const after = await totals();
    expect(resumed).toEqual([false, true, true, true, true, true, true, true]);
    // The connections went to both workers (the acceptor rotates among equally loaded ones).
    expect(Object.keys(after).filter((slot) => after[slot] > (before[slot] ?? 0))).toHaveLength(2);
  });

  it('rotates the certificate when its files change, under load, with no failed request', async () => {
    const agent = new Agent({ connect: { ca: pki.read('ca.pem'), servername: 'a.test' }, pipelining: 0 });
    const l = loop(async () => {
      const res = await request(`https://127.0.0.1:${ports.https}/load`, { dispatcher: agent, reset: true });
      const body = await res.body.text();
      if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}: ${body}`);
    });
    const serials = [(await presented(ports.https, 'a.test')).cert.serialNumber];
    for (let i = 0; i < 3; i++) {
      pki.issue(`rot${i}`, { cn: 'a.test', sans: 'DNS:a.test,DNS:*.b.test' });
      // Replaced as a deployment tool does: new files, then an atomic rename over the old ones.
      copyFileSync(pki.path(`rot${i}.key`), pki.path('next.key'));
      copyFileSync(pki.path(`rot${i}.pem`), pki.path('next.pem'));
      renameSync(pki.path('next.key'), pki.path('live.key'));
      renameSync(pki.path('next.pem'), pki.path('live.pem'));
      const want = new X509Certificate(pki.read(`rot${i}.pem`)).serialNumber;
      await eventually(async () => (await presented(ports.https, 'a.test')).cert.serialNumber, (s) => s === want, 15_000).catch((err) => {
        throw new Error(`${err.message}; reload logs: ${JSON.stringify(shuttle.logs.filter((l) => /reload|TLS file/.test(l.msg)).slice(-4))}`);
      });
      serials.push(want);
    }
    await l.stop();
    await agent.close();
    expect(new Set(serials).size).toBe(4);
    expect({ ...l.counts, ok: l.counts.ok > 20 }).toEqual({ ok: true, refused: 0, failed: 0, errors: [] });
    writeFileSync(pki.path('unused'), '');
  }, 90_000);
});
