/**
 * The files a config names for TLS (certificates, keys, CAs), read and checked when the config is
 * loaded, at start and at every reload: unreadable, not PEM, a key that does not match its
 * certificate, a certificate expired or not yet valid — each a config problem with its path, so a
 * bad rotation is refused whole and the running certificates stay. The contents travel to the
 * workers beside the config (never inside it: /config_dump shows paths, not keys).
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { ConfigProblem } from './load.ts';
import type { ShuttleConfig } from './schema.ts';

/** PEM text by the path the config gives (as written, resolved against the config's folder to read). */
export type Secrets = Readonly<Record<string, string>>;

export interface SecretsResult {
  secrets: Secrets;
  problems: ConfigProblem[];
}

/** The certificates of a PEM bundle, leaf first. */
export function certificatesOf(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => new X509Certificate(b));
}

/** Every file path the config names for TLS, with where it is named. */
export function tlsFiles(config: ShuttleConfig): { path: string; at: string; kind: 'cert' | 'key' | 'ca'; pairedKey?: string }[] {
  const out: { path: string; at: string; kind: 'cert' | 'key' | 'ca'; pairedKey?: string }[] = [];
  config.listeners.forEach((l, i) => {
    l.tls?.certificates.forEach((c, ci) => {
      out.push({ path: c.cert, at: `listeners[${i}].tls.certificates[${ci}].cert`, kind: 'cert', pairedKey: c.key });
      out.push({ path: c.key, at: `listeners[${i}].tls.certificates[${ci}].key`, kind: 'key' });
    });
    if (l.tls?.client_ca) out.push({ path: l.tls.client_ca, at: `listeners[${i}].tls.client_ca`, kind: 'ca' });
  });
  config.clusters.forEach((c, i) => {
    if (c.tls?.ca) out.push({ path: c.tls.ca, at: `clusters[${i}].tls.ca`, kind: 'ca' });
    if (c.tls?.cert) out.push({ path: c.tls.cert, at: `clusters[${i}].tls.cert`, kind: 'cert', pairedKey: c.tls.key });
    if (c.tls?.key) out.push({ path: c.tls.key, at: `clusters[${i}].tls.key`, kind: 'key' });
  });
  return out;
}

/** Reads and checks every TLS file of `config` (paths relative to `configFile`'s folder; `provided`: contents known already). */
export async function loadSecrets(config: ShuttleConfig, configFile: string, now = Date.now(), provided: Secrets = {}): Promise<SecretsResult> {
  const files = tlsFiles(config);
  // PEM given already (xDS: inline and SDS) is checked like a file's, not read.
  const secrets: Record<string, string> = { ...provided };
  const problems: ConfigProblem[] = [];
  const base = dirname(configFile);
  await Promise.all([...new Set(files.map((f) => f.path))].filter((path) => !(path in secrets)).map(async (path) => {
    try {
      secrets[path] = await readFile(isAbsolute(path) ? path : resolve(base, path), 'utf8');
    } catch {
      // Reported below, once per place that names it.
    }
  }));
  for (const f of files) {
    const pem = secrets[f.path];
    if (pem === undefined) {
      problems.push({ path: f.at, message: `cannot read ${f.path}` });
      continue;
    }
    try {
      if (f.kind === 'key') {
        createPrivateKey(pem);
        continue;
      }
      const certs = certificatesOf(pem);
      if (certs.length === 0) throw new Error('no PEM certificate in it');
      if (f.kind === 'ca') continue;
      const leaf = certs[0];
      if (Date.parse(leaf.validTo) < now) throw new Error(`the certificate expired on ${new Date(leaf.validTo).toISOString()}`);
      if (Date.parse(leaf.validFrom) > now) throw new Error(`the certificate is not valid before ${new Date(leaf.validFrom).toISOString()}`);
      const keyPem = f.pairedKey !== undefined ? secrets[f.pairedKey] : undefined;
      if (keyPem !== undefined) {
        let matches = false;
        try {
          matches = leaf.checkPrivateKey(createPrivateKey(keyPem));
        } catch {
          // (an unreadable key is reported at its own path)
        }
        if (!matches) throw new Error(`the key ${f.pairedKey} does not match this certificate`);
      }
    } catch (err) {
      problems.push({ path: f.at, message: `${f.path}: ${(err as Error).message.replace(/\n[\s\S]*/, '')}` });
    }
  }
  return { secrets, problems };
}
