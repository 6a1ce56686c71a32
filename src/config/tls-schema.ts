/**
 * TLS in the config: termination on a listener (certificates chosen by SNI and key type, ALPN,
 * versions, mTLS), passthrough routing by SNI on tcp listeners, and TLS to a cluster's hosts.
 * Files are named here and read (and checked: readable, key matches certificate, not expired)
 * when the config is loaded, see secrets.ts; their contents never appear in /config_dump.
 */
import { z } from 'zod';
import { duration } from './route-schema.ts';

const file = z.string().min(1, 'expected a file path');
const TLS_VERSIONS = ['TLSv1.2', 'TLSv1.3'] as const;
const ALPN = z.array(z.string().min(1).max(255)).min(1);

/** Envoy's forward_client_cert_details, for x-forwarded-client-cert. */
export const FORWARD_CLIENT_CERT = ['sanitize', 'forward', 'append_forward', 'sanitize_set'] as const;

export const tlsListenerOptions = z.object({
  /** Certificates with their keys; chosen by SNI among their DNS names (and by key type: RSA and ECDSA for the same names live side by side). The first is the default. */
  certificates: z.array(z.object({ cert: file, key: file }).strict()).min(1, 'a TLS listener needs at least one certificate'),
  /** ALPN protocols offered, in preference order (default: h2 and http/1.1 for http and auto listeners, none otherwise). */
  alpn: ALPN.optional(),
  min_version: z.enum(TLS_VERSIONS).default('TLSv1.2'),
  max_version: z.enum(TLS_VERSIONS).default('TLSv1.3'),
  /** OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites are OpenSSL's defaults). */
  ciphers: z.string().optional(),
  /** mTLS: CA certificates client certificates are verified against. */
  client_ca: file.optional(),
  /** mTLS: refuse a client without a valid certificate (with client_ca). */
  require_client_cert: z.boolean().default(false),
  /** A handshake not done by then closes the connection (counted as a timeout). */
  handshake_timeout: duration.default(10_000),
  /** What reaches the upstream in x-forwarded-client-cert (HTTP): Envoy's forward_client_cert_details. */
  forward_client_cert: z.enum(FORWARD_CLIENT_CERT).default('sanitize'),
}).strict().superRefine((t, ctx) => {
  if (t.require_client_cert && !t.client_ca) ctx.addIssue({ code: 'custom', path: ['client_ca'], message: 'require_client_cert needs client_ca' });
  if (t.min_version === 'TLSv1.3' && t.max_version === 'TLSv1.2') ctx.addIssue({ code: 'custom', path: ['min_version'], message: 'min_version is above max_version' });
});

/** TLS passthrough on a tcp listener: the ClientHello's server name picks the cluster; bytes pass untouched. */
export const sniRoute = z.object({
  /** Exact names or wildcards (*.example.com). */
  server_names: z.array(z.string().regex(/^(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$/, 'expected a server name or *.suffix')).min(1),
  cluster: z.string(),
}).strict();

export const tlsClusterOptions = z.object({
  /** Server name sent (SNI) and checked against the certificate (default: the host's address). */
  sni: z.string().optional(),
  /** CA certificates to verify the hosts against (default: Node's bundled public CAs). */
  ca: file.optional(),
  /** Accept only a certificate with one of these SANs (DNS names or URIs such as spiffe://…). */
  verify_subject_alt_name: z.array(z.string().min(1)).optional(),
  /** Client certificate (mTLS to the hosts). */
  cert: file.optional(),
  key: file.optional(),
  alpn: ALPN.optional(),
  /** Skip verification (tests and trusted networks only; logged as a warning). */
  insecure_skip_verify: z.boolean().default(false),
  min_version: z.enum(TLS_VERSIONS).default('TLSv1.2'),
}).strict().superRefine((t, ctx) => {
  if ((t.cert === undefined) !== (t.key === undefined)) ctx.addIssue({ code: 'custom', path: [t.cert === undefined ? 'cert' : 'key'], message: 'give both cert and key, or neither' });
});

export type TlsListenerConfig = z.output<typeof tlsListenerOptions>;
export type TlsClusterConfig = z.output<typeof tlsClusterOptions>;
export type SniRouteConfig = z.output<typeof sniRoute>;
export type ForwardClientCert = (typeof FORWARD_CLIENT_CERT)[number];
