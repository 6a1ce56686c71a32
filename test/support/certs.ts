/**
 * Certificates made at test time with the openssl command line (present on every Debian machine,
 * and the tool operators make their test PKI with): a CA, server certificates with several SANs,
 * a client certificate with a SPIFFE URI SAN, an expired certificate, and a second CA whose
 * certificates the first does not trust. EC P-256 keys: fast to make and to use.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Pki {
  dir: string;
  /** Path of a file in the PKI's folder. */
  path(name: string): string;
  read(name: string): string;
  /** Makes `<name>.pem` and `<name>.key` signed by `ca` (default "ca"), with SANs "DNS:a,URI:b". */
  issue(name: string, opts: { cn: string; sans: string; ca?: string; days?: number; startdate?: string; enddate?: string; rsa?: boolean }): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

export function makePki(): Pki {
  const dir = mkdtempSync(join(tmpdir(), 'shuttle-pki-'));
  const path = (n: string) => join(dir, n);
  const newKey = (name: string, rsa = false) => openssl(rsa ? ['genrsa', '-out', `${name}.key`, '2048'] : ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`], dir);
  const makeCa = (name: string, cn: string) => {
    newKey(name);
    openssl(['req', '-x509', '-new', '-key', `${name}.key`, '-out', `${name}.pem`, '-days', '30', '-subj', `/CN=${cn}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
    writeFileSync(path(`${name}.index`), '');
    writeFileSync(path(`${name}.serial`), '1000\n');
  };
  makeCa('ca', 'Shuttle Test CA');
  makeCa('other-ca', 'Another CA');
  const pki: Pki = {
    dir,
    path,
    read: (n) => readFileSync(path(n), 'utf8'),
    issue(name, opts) {
      const ca = opts.ca ?? 'ca';
      newKey(name, opts.rsa);
      openssl(['req', '-new', '-key', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${opts.cn}`], dir);
      // `openssl ca` is the one that takes explicit validity dates (an expired certificate).
      writeFileSync(path(`${name}.ext`), `subjectAltName=${opts.sans}\nbasicConstraints=CA:FALSE\n`);
      writeFileSync(path(`${name}.cnf`), `[ca]\ndefault_ca=d\n[d]\ndatabase=${ca}.index\nserial=${ca}.serial\nnew_certs_dir=.\ndefault_md=sha256\npolicy=p\nunique_subject=no\n[p]\ncommonName=supplied\n`);
      const dates = opts.startdate ? ['-startdate', opts.startdate, '-enddate', opts.enddate!] : ['-days', String(opts.days ?? 10)];
      openssl(['ca', '-batch', '-config', `${name}.cnf`, '-cert', `${ca}.pem`, '-keyfile', `${ca}.key`, '-in', `${name}.csr`, '-out', `${name}.pem`, '-extfile', `${name}.ext`, '-notext', ...dates], dir);
    },
  };
  return pki;
}
