/**
 * TLS termination for one listener in one worker. The socket arrives as plain TCP (only an
 * untouched TCP socket can cross threads); the worker hands it to a `tls.Server` that never
 * listens (`emit('connection')`), which is the path that works with ALPN, SNI and HTTP/2.
 *
 *   socket ─▶ tls.Server: SNICallback picks the certificates for the name (exact, then *.suffix,
 *             else the first), ALPN picks h2 / http/1.1, mTLS verifies the client ─▶ secureConnection
 *             ─▶ the listener's protocol on the TLS socket, with TlsInfo (SNI, ALPN, peer identity)
 *
 * Session tickets are encrypted with keys shared by every worker (and rotated by the main
 * thread), so a client resumes whichever worker it reaches. A new config generation swaps the
 * certificates for new handshakes; established connections keep theirs.
 */
import { createHash } from 'node:crypto';
import type net from 'node:net';
import tls from 'node:tls';
import { certificatesOf, type Secrets } from '../config/secrets.ts';
import type { TlsListenerConfig } from '../config/tls-schema.ts';
import { serverNameMatches } from './client-hello.ts';

/** What the proxy knows of a TLS connection (logs, routing, x-forwarded-client-cert). */
export interface TlsInfo {
  readonly sni: string | undefined;
  readonly alpn: string | undefined;
  readonly version: string;
  readonly cipher: string;
  readonly resumed: boolean;
  /** The client's certificate (mTLS), when it sent one. */
  readonly peer: PeerCertificate | undefined;
}

export interface PeerCertificate {
  /** The identity routes match on: the first URI SAN (a SPIFFE id), else the first DNS SAN, else the subject CN. */
  readonly identity: string;
  readonly subject: string;
  readonly uriSans: readonly string[];
  readonly dnsSans: readonly string[];
  /** SHA-256 of the DER certificate, hex (XFCC's Hash). */
  readonly hash: string;
  /** Verified against client_ca. */
  readonly verified: boolean;
}

export type HandshakeFailure = 'timeout' | 'no_client_cert' | 'bad_client_cert' | 'protocol' | 'other';

export interface TlsCounters {
  handshake(info: TlsInfo): void;
  failed(reason: HandshakeFailure, err: Error, remote: string | undefined): void;
}

interface Group {
  names: string[];
  context: tls.SecureContext;
}

/** Splits "URI:a, DNS:b" into its kinds. */
function sans(subjectaltname: string | undefined): { uri: string[]; dns: string[] } {
  const uri: string[] = [];
  const dns: string[] = [];
  for (const part of (subjectaltname ?? '').split(/,\s*/)) {
    if (part.startsWith('URI:')) uri.push(part.slice(4));
    else if (part.startsWith('DNS:')) dns.push(part.slice(4).toLowerCase());
  }
  return { uri, dns };
}

export function peerOf(socket: tls.TLSSocket): PeerCertificate | undefined {
  const cert = socket.getPeerCertificate();
  if (!cert || !cert.raw) return undefined;
  const { uri, dns } = sans(cert.subjectaltname);
  const cn = typeof cert.subject?.CN === 'string' ? cert.subject.CN : '';
  const subject = Object.entries(cert.subject ?? {}).map(([k, v]) => `${k}=${v}`).join(',');
  return {
    identity: uri[0] ?? dns[0] ?? cn,
    subject,
    uriSans: uri,
    dnsSans: dns,
    hash: createHash('sha256').update(cert.raw).digest('hex'),
    verified: socket.authorized,
  };
}

/** Why a handshake failed, from OpenSSL's error (for the per-reason counter). */
function failureOf(err: Error & { code?: string }): HandshakeFailure {
  const text = `${err.code ?? ''} ${err.message}`;
  if (/timeout/i.test(text)) return 'timeout';
  if (/PEER_DID_NOT_RETURN_A_CERTIFICATE|CERTIFICATE_REQUIRED/i.test(text)) return 'no_client_cert';
  if (/CERTIFICATE|UNKNOWN_CA|VERIFY/i.test(text)) return 'bad_client_cert';
  if (/VERSION|PROTOCOL|NO_SHARED_CIPHER|WRONG_VERSION|HTTP_REQUEST|UNKNOWN_PROTOCOL/i.test(text)) return 'protocol';
  return 'other';
}

export class TlsTerminator {
  private server: tls.Server | undefined;
  private groups: Group[] = [];
  private key = '';
  private ticketKeys: Buffer;
  private requireClientCert = false;
  private requestCert = false;
  private readonly counters: TlsCounters;
  private readonly pending = new Map<net.Socket, (s: tls.TLSSocket | undefined, info?: TlsInfo) => void>();

  constructor(ticketKeys: Uint8Array, counters: TlsCounters) {
    this.ticketKeys = Buffer.from(ticketKeys);
    this.counters = counters;
  }

  /**
   * The listener's TLS settings and files for new handshakes. A server is rebuilt only when the
   * settings or the files changed; handshakes under way finish on the one they began with.
   */
  configure(cfg: TlsListenerConfig, secrets: Secrets, defaultAlpn: readonly string[]): void {
    const key = JSON.stringify([cfg, defaultAlpn, cfg.certificates.map((c) => [secrets[c.cert], secrets[c.key]]), cfg.client_ca ? secrets[cfg.client_ca] : '']);
    if (key === this.key) return;
    this.key = key;
    const ca = cfg.client_ca ? secrets[cfg.client_ca] : undefined;
    const common = { minVersion: cfg.min_version, maxVersion: cfg.max_version, ciphers: cfg.ciphers, ca } as const;
    // Certificates for the same names share one context: OpenSSL then picks RSA or ECDSA by
    // what the client supports.
    const byNames = new Map<string, { names: string[]; cert: string[]; key: string[] }>();
    for (const c of cfg.certificates) {
      const pem = secrets[c.cert];
      const leaf = certificatesOf(pem)[0];
      const names = sans(leaf.subjectAltName).dns;
      if (names.length === 0) {
        const cn = /CN=([^\n,]+)/.exec(leaf.subject)?.[1];
        if (cn) names.push(cn.toLowerCase());
      }
      const k = names.join(',');
      const g = byNames.get(k) ?? { names, cert: [], key: [] };
      g.cert.push(pem);
      g.key.push(secrets[c.key]);
      byNames.set(k, g);
    }
    const groups = [...byNames.values()];
    this.groups = groups.map((g) => ({ names: g.names, context: tls.createSecureContext({ ...common, cert: g.cert, key: g.key, ticketKeys: this.ticketKeys }) }));
    this.requireClientCert = cfg.require_client_cert;
    this.requestCert = cfg.client_ca !== undefined;
    const old = this.server;
    // The first certificates' names are served by the server's own context: a context switched
    // in by SNI keeps only one key type, the server's keeps RSA and ECDSA side by side.
    const server = tls.createServer({
      ...common,
      cert: groups[0].cert,
      key: groups[0].key,
      // One group of certificates: nothing to choose, and no callback round trip per handshake.
      SNICallback: groups.length > 1 ? (name, cb) => cb(null, this.contextFor(name)) : undefined,
      ticketKeys: this.ticketKeys,
      ALPNProtocols: [...(cfg.alpn ?? defaultAlpn)],
      requestCert: cfg.client_ca !== undefined,
      // Checked after the handshake (see secured()): OpenSSL's own refusal under TLS 1.3 reaches
      // us as a bare reset, without the reason the counters and logs need.
      rejectUnauthorized: false,
      handshakeTimeout: cfg.handshake_timeout,
    });
    server.on('secureConnection', (s: tls.TLSSocket) => this.secured(s));
    server.on('tlsClientError', (err: Error, s: tls.TLSSocket) => this.failed(err, s));
    this.server = server;
    void old; // (not listening: nothing to close; its handshakes finish through their own sockets)
  }

  /** New ticket keys (rotation): new tickets use them; older ones make a full handshake. */
  setTicketKeys(keys: Uint8Array): void {
    this.ticketKeys = Buffer.from(keys);
    this.server?.setTicketKeys(this.ticketKeys);
    for (const g of this.groups) g.context.context.setTicketKeys(this.ticketKeys);
  }

  /** The context for a server name; undefined: the server's own (the first certificates). */
  private contextFor(name: string): tls.SecureContext | undefined {
    const n = name.toLowerCase();
    let g = this.groups.find((x) => x.names.includes(n));
    g ??= this.groups.find((x) => x.names.some((p) => p.startsWith('*.') && serverNameMatches(p, n)));
    return g === undefined || g === this.groups[0] ? undefined : g.context;
  }

  /**
   * Runs the handshake on `socket` (bytes already read come first). `done` gets the TLS socket and
   * what was negotiated, or undefined when the handshake failed (the socket is closed then).
   */
  accept(socket: net.Socket, initial: Buffer | undefined, done: (s: tls.TLSSocket | undefined, info?: TlsInfo) => void): void {
    if (initial !== undefined && initial.length > 0) socket.unshift(initial);
    this.pending.set(socket, done);
    socket.once('close', () => {
      const cb = this.pending.get(socket);
      if (cb) {
        this.pending.delete(socket);
        cb(undefined);
      }
    });
    // (Not resumed here: TLS reads through the handle; resuming the JS stream would take the
    // unshifted bytes away from it.)
    this.server!.emit('connection', socket);
  }

  /** The callback of the TCP socket a TLS socket wraps (tls.Server keeps it as `_parent`). */
  private callbackOf(s: tls.TLSSocket | undefined): ((s: tls.TLSSocket | undefined, info?: TlsInfo) => void) | undefined {
    const raw = (s as unknown as { _parent?: net.Socket } | undefined)?._parent;
    if (raw === undefined) return undefined;
    const cb = this.pending.get(raw);
    this.pending.delete(raw);
    return cb;
  }

  private secured(s: tls.TLSSocket): void {
    const cb = this.callbackOf(s);
    // A certificate that fails verification is refused even where one is optional (as Envoy
    // does): its names must never reach routing, logs or x-forwarded-client-cert.
    const presented = this.requestCert && s.getPeerCertificate()?.raw !== undefined;
    if (!s.authorized && (this.requireClientCert || presented)) {
      const why = String(s.authorizationError ?? '');
      const noCert = !presented || /NO_PEER_CERTIFICATE|did not return|no certificate/i.test(why);
      this.counters.failed(noCert ? 'no_client_cert' : 'bad_client_cert', new Error(`client certificate refused: ${why || 'none sent'}`), s.remoteAddress);
      s.destroy();
      cb?.(undefined);
      return;
    }
    const cipher = s.getCipher();
    const info: TlsInfo = {
      sni: typeof s.servername === 'string' ? s.servername : undefined,
      alpn: typeof s.alpnProtocol === 'string' ? s.alpnProtocol : undefined,
      version: s.getProtocol() ?? '',
      cipher: cipher?.standardName ?? cipher?.name ?? '',
      resumed: s.isSessionReused(),
      peer: peerOf(s),
    };
    this.counters.handshake(info);
    if (cb) cb(s, info);
    else s.destroy();
  }

  private failed(err: Error, s: tls.TLSSocket): void {
    const cb = this.callbackOf(s);
    this.counters.failed(failureOf(err as Error & { code?: string }), err, s?.remoteAddress);
    s?.destroy();
    cb?.(undefined);
  }
}
