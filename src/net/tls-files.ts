/**
 * The main thread's view of the TLS files a config names: watching them (a certificate rotates
 * by replacing its files, which reloads the config) and their expiry dates for /metrics.
 */
import { unwatchFile, watchFile, type Stats } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { ShuttleConfig } from '../config/schema.ts';
import { certificatesOf, tlsFiles, type Secrets } from '../config/secrets.ts';

/** How often a watched file's mtime is looked at (stat polling: works for bind mounts and Kubernetes secret volumes). */
const POLL_MS = 1000;

export class TlsFileWatch {
  private readonly base: string;
  private readonly onChange: () => void;
  private watched = new Set<string>();
  private readonly listener = (curr: Stats, prev: Stats) => {
    if (curr.mtimeMs !== prev.mtimeMs || curr.ino !== prev.ino || curr.size !== prev.size) this.onChange();
  };

  constructor(configFile: string, onChange: () => void) {
    this.base = dirname(configFile);
    this.onChange = onChange;
  }

  /** Watches exactly the files `config` names. */
  update(config: ShuttleConfig): void {
    const next = new Set(tlsFiles(config).map((f) => (isAbsolute(f.path) ? f.path : resolve(this.base, f.path))));
    for (const f of this.watched) if (!next.has(f)) unwatchFile(f, this.listener);
    for (const f of next) if (!this.watched.has(f)) watchFile(f, { interval: POLL_MS, persistent: false }, this.listener);
    this.watched = next;
  }
}

/** When each listener certificate expires (ms since the epoch). */
export function certificateExpiries(config: ShuttleConfig, secrets: Secrets): { listener: string; certificate: string; expiresAt: number }[] {
  const out: { listener: string; certificate: string; expiresAt: number }[] = [];
  for (const l of config.listeners) {
    for (const c of l.tls?.certificates ?? []) {
      const pem = secrets[c.cert];
      if (pem === undefined) continue;
      const leaf = certificatesOf(pem)[0];
      if (leaf) out.push({ listener: l.name, certificate: c.cert, expiresAt: Date.parse(leaf.validTo) });
    }
  }
  return out;
}
