/**
 * TLS to upstream hosts (a cluster's `tls`): verification on by default (the cluster's CA, or
 * Node's public CAs), the server name sent as SNI and checked, optionally a required SAN
 * (`verify_subject_alt_name`, e.g. a SPIFFE id), a client certificate for mTLS, ALPN, and
 * session resumption per host.
 */
import { createHash } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import type { Secrets } from '../config/secrets.ts';
import type { TlsClusterConfig } from '../config/tls-schema.ts';

export interface UpstreamTls {
  /** Identifies the settings and file contents (pools are kept per settings). */
  readonly key: string;
  readonly options: tls.ConnectionOptions;
  readonly sni: string | undefined;
  readonly verifySans: readonly string[] | undefined;
  /** The last session of each host ("host:port"), to resume. */
  readonly sessions: Map<string, Buffer>;
}

export function upstreamTls(cfg: TlsClusterConfig, secrets: Secrets): UpstreamTls {
  const pems = [cfg.ca, cfg.cert, cfg.key].map((p) => (p ? secrets[p] : ''));
  return {
    key: createHash('sha256').update(JSON.stringify([cfg, pems])).digest('hex').slice(0, 16),
    options: {
      ca: cfg.ca ? secrets[cfg.ca] : undefined,
      cert: cfg.cert ? secrets[cfg.cert] : undefined,
      key: cfg.key ? secrets[cfg.key] : undefined,
      ALPNProtocols: cfg.alpn ? [...cfg.alpn] : undefined,
      rejectUnauthorized: !cfg.insecure_skip_verify,
      minVersion: cfg.min_version,
    },
    sni: cfg.sni,
    verifySans: cfg.verify_subject_alt_name,
    sessions: new Map(),
  };
}

/** Starts a TLS connection to host:port with the cluster's settings (secureConnect follows). */
export function connectTls(t: UpstreamTls, host: string, port: number, allowHalfOpen: boolean | undefined): tls.TLSSocket {
  const servername = t.sni ?? (net.isIP(host) ? undefined : host);
  const address = `${host}:${port}`;
  const options: tls.ConnectionOptions & { allowHalfOpen?: boolean } = {
    ...t.options,
    host,
    port,
    servername,
    allowHalfOpen,
    session: t.sessions.get(address),
    checkServerIdentity: (name, cert) => {
      if (t.verifySans === undefined) return tls.checkServerIdentity(name ?? host, cert);
      const sans = (cert.subjectaltname ?? '').split(/,\s*/).map((s) => s.replace(/^(DNS|URI|IP Address):/, ''));
      if (t.verifySans.some((want) => sans.includes(want))) return undefined;
      return new Error(`the certificate's SANs (${sans.join(', ') || 'none'}) include none of verify_subject_alt_name`);
    },
  };
  const socket = tls.connect(options);
  socket.setNoDelay(true);
  socket.on('session', (session: Buffer) => t.sessions.set(address, session));
  return socket;
}
