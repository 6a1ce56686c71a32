/**
 * TLS from xDS: a listener's or cluster's `envoy.transport_sockets.tls` transport socket
 * (DownstreamTlsContext / UpstreamTlsContext) as Shuttle's `tls`, and SDS Secret resources.
 *
 * Shuttle's TLS config names files, whose contents travel beside the config (config/secrets.ts),
 * never in it. xDS gives certificates three ways, each becoming such a name:
 *
 *   filename                 → the path itself (read and checked when the generation is applied)
 *   inline_bytes / _string   → "xds-inline:<sha256>" with the PEM carried by the mapped resource
 *   an SDS secret (over ADS) → "xds-sds:<name>/cert|key|ca" until the secret arrives, then, at
 *                              compose time, "xds-sds:<name>@<digest>/…" (see resolveSds): a
 *                              rotated secret changes the name, so the listener or cluster counts
 *                              as changed and the new certificate applies as a new generation
 *                              (handshakes under way keep the old one).
 *
 * A listener or cluster whose secrets have not arrived warms, as a cluster waiting for EDS does.
 */
import { createHash, createPrivateKey } from 'node:crypto';
import { certificatesOf } from '../config/secrets.ts';
import { Fields, XdsFieldError, type Message } from './fields.ts';

type Raw = Record<string, unknown>;

const TLS_SOCKET = 'envoy.transport_sockets.tls';
const DOWNSTREAM = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';
const UPSTREAM = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';
const SDS_PREFIX = 'xds-sds:';

/** What a mapped resource's TLS needs besides its config: inline PEM and the SDS secrets it names. */
export interface TlsNeeds {
  inline: Record<string, string>;
  sds: Set<string>;
}

export const noTlsNeeds = (): TlsNeeds => ({ inline: {}, sds: new Set() });

/** A DataSource as a name Shuttle's TLS config can carry. */
function dataSource(d: Fields, needs: TlsNeeds): string {
  const filename = d.str('filename');
  const inline = d.str('inline_string') ?? (d.has('inline_bytes') ? Buffer.from(d.str('inline_bytes')!, 'base64').toString('utf8') : undefined);
  if (d.has('environment_variable')) d.fail('environment_variable', 'certificates from environment variables are not supported');
  d.skip('watched_directory');
  d.done();
  if (filename !== undefined) return filename;
  if (inline === undefined) throw new XdsFieldError(d.path, 'one of filename, inline_bytes, inline_string is required');
  const name = `xds-inline:${createHash('sha256').update(inline).digest('hex').slice(0, 32)}`;
  needs.inline[name] = inline;
  return name;
}

function sdsRef(s: Fields, needs: TlsNeeds): string {
  const name = s.requiredStr('name');
  const config = s.message('sds_config');
  if (config) {
    if (!config.message('ads')) config.fail(config.keys()[0] ?? 'ads', 'only { ads: {} } is supported (secrets over the ADS stream; Istio agent\'s SDS socket is not supported yet)');
    config.skip('ads', 'resource_api_version', 'initial_fetch_timeout');
    config.done();
  } else {
    s.fail('sds_config', 'required: { ads: {} }');
  }
  s.done();
  needs.sds.add(name);
  return name;
}

const VERSIONS: Record<string, string | null> = { TLS_AUTO: null, TLSv1_2: 'TLSv1.2', TLSv1_3: 'TLSv1.3' };

function tlsParams(p: Fields, out: Raw, server: boolean): void {
  const min = p.str('tls_minimum_protocol_version');
  const max = p.str('tls_maximum_protocol_version');
  for (const [key, v] of [['tls_minimum_protocol_version', min], ['tls_maximum_protocol_version', max]] as const) {
    if (v !== undefined && !(v in VERSIONS)) p.fail(key, `${v} is not supported (TLS_AUTO, TLSv1_2, TLSv1_3 are)`);
  }
  if (min && VERSIONS[min]) out.min_version = VERSIONS[min];
  if (max && VERSIONS[max]) {
    if (!server) p.fail('tls_maximum_protocol_version', 'a maximum version to the hosts is not supported');
    out.max_version = VERSIONS[max];
  }
  const ciphers = p.strings('cipher_suites');
  if (ciphers.length > 0) {
    if (!server) p.fail('cipher_suites', 'cipher suites to the hosts are not supported');
    out.ciphers = ciphers.join(':');
  }
  // Curves and signature algorithms: OpenSSL's defaults (which include Envoy's).
  p.skip('ecdh_curves', 'signature_algorithms');
  p.done();
}

/** A CertificateValidationContext: its CA, and for clusters the SANs the host must present. */
function validation(v: Fields, needs: TlsNeeds, server: boolean, out: Raw): void {
  const ca = v.message('trusted_ca');
  if (ca) out[server ? 'client_ca' : 'ca'] = dataSource(ca, needs);
  const sans: string[] = [];
  for (const t of v.list('match_typed_subject_alt_names')) {
    t.skip('san_type', 'oid');
    sans.push(exactMatch(t.requiredMessage('matcher')));
    t.done();
  }
  for (const m of v.list('match_subject_alt_names')) sans.push(exactMatch(m));
  if (sans.length > 0) {
    if (server) v.fail(v.has('match_typed_subject_alt_names') ? 'match_typed_subject_alt_names' : 'match_subject_alt_names', 'checking client certificate SANs is not supported (Shuttle\'s rbac matches the client identity)');
    out.verify_subject_alt_name = sans;
  }
  for (const k of ['verify_certificate_spki', 'verify_certificate_hash', 'crl', 'custom_validator_config', 'custom_signer_config']) {
    if (v.has(k) && !(Array.isArray(v.raw(k)) && (v.raw(k) as unknown[]).length === 0)) v.fail(k, 'not supported');
  }
  const trust = v.str('trust_chain_verification') ?? 'VERIFY_TRUST_CHAIN';
  if (trust !== 'VERIFY_TRUST_CHAIN') v.fail('trust_chain_verification', `${trust} is not supported`);
  v.skip('allow_expired_certificate', 'only_verify_leaf_cert_crl', 'max_verify_depth', 'system_root_certs');
  v.done();
}

function exactMatch(m: Fields): string {
  const exact = m.str('exact');
  if (exact === undefined || m.keys().length !== 1) m.fail(m.keys().find((k) => k !== 'exact') ?? 'exact', 'SANs are matched exactly (exact) by Shuttle');
  m.done();
  return exact!;
}

/** CommonTlsContext → certificates, validation and ALPN, into `out`. */
function common(c: Fields, needs: TlsNeeds, server: boolean, out: Raw): void {
  const params = c.message('tls_params');
  if (params) tlsParams(params, out, server);
  const certs: { cert: string; key: string }[] = [];
  for (const t of c.list('tls_certificates')) {
    const cert = dataSource(t.requiredMessage('certificate_chain'), needs);
    const key = dataSource(t.requiredMessage('private_key'), needs);
    if (t.has('password')) t.fail('password', 'encrypted private keys are not supported');
    t.skip('watched_directory');
    t.done();
    certs.push({ cert, key });
  }
  for (const s of c.list('tls_certificate_sds_secret_configs')) {
    const name = sdsRef(s, needs);
    certs.push({ cert: `${SDS_PREFIX}${name}/cert`, key: `${SDS_PREFIX}${name}/key` });
  }
  if (server) {
    if (certs.length === 0) c.fail('tls_certificates', 'a TLS listener needs a certificate (tls_certificates or tls_certificate_sds_secret_configs)');
    out.certificates = certs;
  } else if (certs.length > 1) {
    c.fail('tls_certificates', 'one client certificate at most');
  } else if (certs.length === 1) {
    out.cert = certs[0].cert;
    out.key = certs[0].key;
  }
  const v = c.message('validation_context');
  const vSds = c.message('validation_context_sds_secret_config');
  const combined = c.message('combined_validation_context');
  if (v) validation(v, needs, server, out);
  if (vSds) out[server ? 'client_ca' : 'ca'] = `${SDS_PREFIX}${sdsRef(vSds, needs)}/ca`;
  if (combined) {
    const d = combined.message('default_validation_context');
    if (d) validation(d, needs, server, out);
    out[server ? 'client_ca' : 'ca'] = `${SDS_PREFIX}${sdsRef(combined.requiredMessage('validation_context_sds_secret_config'), needs)}/ca`;
    combined.done();
  }
  const alpn = c.strings('alpn_protocols');
  if (alpn.length > 0) out.alpn = alpn;
  c.skip('key_log');
  c.done();
}

/** The transport socket a listener's filter chain or a cluster names: its typed config, or undefined for raw_buffer. */
function tlsContext(ts: Fields, expected: string): Fields | undefined {
  const name = ts.str('name');
  const typed = ts.message('typed_config');
  ts.done();
  const type = typed?.str('@type');
  if (name === 'envoy.transport_sockets.raw_buffer' && !type) return undefined;
  if (type !== expected || (name !== undefined && name !== TLS_SOCKET && name !== 'tls')) {
    throw new XdsFieldError(ts.path, `transport socket ${name ?? type ?? '(unnamed)'} is not supported (${TLS_SOCKET} with ${expected.slice(expected.lastIndexOf('.') + 1)}, or raw_buffer, is)`);
  }
  return typed;
}

/** A listener filter chain's transport socket → the listener's `tls`, or undefined (plain). */
export function downstreamTls(ts: Fields, needs: TlsNeeds): Raw | undefined {
  const d = tlsContext(ts, DOWNSTREAM);
  if (!d) return undefined;
  const out: Raw = {};
  common(d.requiredMessage('common_tls_context'), needs, true, out);
  if (d.wrappedBool('require_client_certificate')) {
    if (!out.client_ca) d.fail('require_client_certificate', 'needs a validation context with a trusted CA');
    out.require_client_cert = true;
  }
  if (d.wrappedBool('require_sni')) d.fail('require_sni', 'not supported');
  if (d.has('ocsp_staple_policy') && d.str('ocsp_staple_policy') !== 'LENIENT_STAPLING') d.fail('ocsp_staple_policy', 'not supported');
  // Sessions: Shuttle resumes with tickets shared by its workers (keys of its own).
  d.skip('session_ticket_keys', 'session_ticket_keys_sds_secret_config', 'disable_stateless_session_resumption', 'disable_stateful_session_resumption', 'session_timeout', 'full_scan_certs_on_sni_mismatch', 'prefer_client_ciphers');
  d.done();
  return out;
}

/** A cluster's transport socket → the cluster's `tls`, or undefined (plain). */
export function upstreamTls(ts: Fields, needs: TlsNeeds): Raw | undefined {
  const u = tlsContext(ts, UPSTREAM);
  if (!u) return undefined;
  const out: Raw = {};
  const sni = u.str('sni');
  if (sni) out.sni = sni;
  const c = u.message('common_tls_context');
  if (c) common(c, needs, false, out);
  // Envoy verifies nothing without a validation context: the same here, said out loud (a warning at load).
  if (out.ca === undefined && out.verify_subject_alt_name === undefined) out.insecure_skip_verify = true;
  if (u.bool('allow_renegotiation')) u.fail('allow_renegotiation', 'renegotiation is not supported');
  u.skip('max_session_keys', 'auto_host_sni', 'auto_sni_san_validation', 'enforce_rsa_key_usage');
  u.done();
  return out;
}

/** An SDS Secret: a certificate with its key, or a validation context's CA. */
export interface MappedSecret {
  name: string;
  cert?: string;
  key?: string;
  ca?: string;
  /** Of the PEM: changes when the secret does. */
  digest: string;
}

export function mapSecret(resource: Message, path = ''): MappedSecret {
  const f = new Fields(resource, path);
  const name = f.requiredStr('name');
  const needs = noTlsNeeds();
  const out: MappedSecret = { name, digest: '' };
  const pem = (ref: string) => needs.inline[ref] ?? f.fail('tls_certificate', 'an SDS secret carries its PEM inline (a file named in a secret is not supported)');
  const t = f.message('tls_certificate');
  const v = f.message('validation_context');
  if (t) {
    const certRef = dataSource(t.requiredMessage('certificate_chain'), needs);
    const keyRef = dataSource(t.requiredMessage('private_key'), needs);
    if (t.has('password')) t.fail('password', 'encrypted private keys are not supported');
    t.skip('watched_directory');
    t.done();
    out.cert = pem(certRef);
    out.key = pem(keyRef);
    checkPair(out.cert, out.key, f);
  } else if (v) {
    const ca = v.requiredMessage('trusted_ca');
    const ref = dataSource(ca, needs);
    if (v.list('match_typed_subject_alt_names').length + v.list('match_subject_alt_names').length > 0) v.fail('match_typed_subject_alt_names', 'SAN matchers in an SDS secret are not supported (put them in the cluster\'s combined_validation_context.default_validation_context)');
    v.skip('allow_expired_certificate', 'max_verify_depth');
    v.done();
    out.ca = pem(ref);
    if (certificatesOf(out.ca).length === 0) f.fail('validation_context', 'no PEM certificate in trusted_ca');
  } else {
    f.fail('tls_certificate', 'one of tls_certificate, validation_context is required (session ticket keys and generic secrets are not supported)');
  }
  f.done();
  out.digest = createHash('sha256').update(`${out.cert ?? ''}\n${out.key ?? ''}\n${out.ca ?? ''}`).digest('hex').slice(0, 16);
  return out;
}

function checkPair(certPem: string, keyPem: string, f: Fields): void {
  let leaf;
  try {
    leaf = certificatesOf(certPem)[0];
  } catch (err) {
    f.fail('tls_certificate', `certificate_chain: ${(err as Error).message}`);
  }
  if (!leaf) f.fail('tls_certificate', 'certificate_chain: no PEM certificate in it');
  let key;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    return f.fail('tls_certificate', `private_key: ${(err as Error).message}`);
  }
  if (!leaf.checkPrivateKey(key)) f.fail('tls_certificate', 'private_key does not match certificate_chain');
  const now = Date.now();
  if (Date.parse(leaf.validTo) < now) f.fail('tls_certificate', `the certificate expired on ${new Date(leaf.validTo).toISOString()}`);
}

/**
 * Replaces a resource's SDS placeholders with the names of the secrets' current versions, and
 * adds their PEM to `secrets`; false when a secret it names has not arrived (it warms).
 */
export function resolveSds(config: Raw, names: ReadonlySet<string>, accepted: ReadonlyMap<string, MappedSecret>, secrets: Record<string, string>): Raw | undefined {
  for (const n of names) if (!accepted.has(n)) return undefined;
  const replace = (ref: unknown): unknown => {
    if (typeof ref !== 'string' || !ref.startsWith(SDS_PREFIX)) return ref;
    const slash = ref.lastIndexOf('/');
    const name = ref.slice(SDS_PREFIX.length, slash);
    const part = ref.slice(slash + 1) as 'cert' | 'key' | 'ca';
    const secret = accepted.get(name)!;
    const pem = secret[part];
    if (pem === undefined) throw new XdsFieldError(`secret "${name}"`, part === 'ca' ? 'named as a validation context, but it holds a certificate' : 'named as a certificate, but it holds a validation context');
    const versioned = `${SDS_PREFIX}${name}@${secret.digest}/${part}`;
    secrets[versioned] = pem;
    return versioned;
  };
  const tls = config.tls as Raw | undefined;
  if (!tls) return config;
  const out: Raw = { ...tls };
  for (const k of ['cert', 'key', 'ca', 'client_ca']) if (k in out) out[k] = replace(out[k]);
  if (Array.isArray(out.certificates)) out.certificates = (out.certificates as { cert: string; key: string }[]).map((c) => ({ cert: replace(c.cert), key: replace(c.key) }));
  return { ...config, tls: out };
}
