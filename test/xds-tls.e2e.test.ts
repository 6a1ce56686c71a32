/**
 * TLS from xDS: a listener terminates TLS with a certificate sent by SDS over the ADS stream, a
 * cluster speaks TLS to its hosts verifying them against an SDS root and a SPIFFE SAN (Istio's
 * combined validation context), and a rotated secret reaches new handshakes. Real CLI, the test
 * control plane, node:https as client and upstream, certificates made with openssl.
 */
import { X509Certificate } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import { afterAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { makePki } from './support/certs.ts';
import { closedPort } from './support/net.ts';
import { ShuttleProcess, writeTempConfig } from './support/shuttle.ts';
import { eventually } from './support/wait.ts';
import { bootstrapFor, edsCluster, loadAssignment, routeConfig, XdsControlPlane } from './support/xds-server.ts';

const cleanup: (() => Promise<unknown> | unknown)[] = [];
afterAll(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3';
const SPIFFE = 'spiffe://cluster.local/ns/default/sa/backend';
const ads = { ads: {}, resource_api_version: 'V3' };

/** Listener 'web' on `port`: TLS with the SDS secret 'web-cert' (and `common`), HTTP routed by RDS 'web-routes'. */
function webListener(port: number, common: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: 'web', address: { socket_address: { address: '127.0.0.1', port_value: port } },
    filter_chains: [{
      transport_socket: { name: 'envoy.transport_sockets.tls', typed_config: { '@type': `${TLS}.DownstreamTlsContext`, common_tls_context: {
        tls_certificate_sds_secret_configs: [{ name: 'web-cert', sds_config: ads }], ...common,
      } } },
      filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: {
        '@type': HCM, stat_prefix: 'web', rds: { route_config_name: 'web-routes', config_source: ads },
        http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }],
      } }],
    }],
  };
}

/** GET / from 'web' over TLS (SNI web.test, trusting `ca`): the body and the served certificate's serial. */
function httpsGet(port: number, ca: string): Promise<{ body: string; serial: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', port, path: '/', ca, servername: 'web.test', agent: false }, (res) => {
      const serialNumber = (res.socket as TLSSocket).getPeerCertificate().serialNumber;
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ body, serial: serialNumber }));
    });
    req.on('error', reject);
  });
}

describe.each(['sotw', 'delta'] as const)('xDS TLS and SDS, %s', (variant) => {
  it('terminates with an SDS certificate, verifies the upstream against an SDS root and a SPIFFE SAN, and rotates', { timeout: 60_000 }, async () => {
    const pki = makePki();
    pki.issue('web1', { cn: 'web.test', sans: 'DNS:web.test' });
    pki.issue('web2', { cn: 'web.test', sans: 'DNS:web.test' });
    pki.issue('backend', { cn: 'backend.test', sans: `DNS:backend.test,URI:${SPIFFE}` });
    const serial = (name: string) => new X509Certificate(pki.read(`${name}.pem`)).serialNumber;

    const upstream = https.createServer({ cert: pki.read('backend.pem'), key: pki.read('backend.key') }, (_, res) => res.end('from the TLS upstream'));
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    cleanup.push(() => upstream.close());
    const upPort = (upstream.address() as { port: number }).port;

    const cp = new XdsControlPlane();
    await cp.start();
    cleanup.push(() => cp.kill());
    const certSecret = (name: string) => ({ name: 'web-cert', tls_certificate: { certificate_chain: { inline_string: pki.read(`${name}.pem`) }, private_key: { inline_string: pki.read(`${name}.key`) } } });
    cp.set('sds', [certSecret('web1'), { name: 'ROOTCA', validation_context: { trusted_ca: { inline_string: pki.read('ca.pem') } } }]);
    cp.set('cds', [edsCluster('backend', {
      transport_socket: { name: 'envoy.transport_sockets.tls', typed_config: { '@type': `${TLS}.UpstreamTlsContext`, sni: 'backend.test', common_tls_context: {
        combined_validation_context: {
          default_validation_context: { match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { exact: SPIFFE } }] },
          validation_context_sds_secret_config: { name: 'ROOTCA', sds_config: ads },
        },
      } } },
    })]);
    cp.set('eds', [loadAssignment('backend', [{ port: upPort }])]);
    const port = await closedPort();
    cp.set('lds', [webListener(port, { alpn_protocols: ['http/1.1'], tls_params: { tls_minimum_protocol_version: 'TLSv1_2' } })]);
    cp.set('rds', [routeConfig('web-routes', [{ match: { prefix: '/' }, route: { cluster: 'backend' } }])]);

    const shuttle = new ShuttleProcess(writeTempConfig(YAML.stringify(bootstrapFor(cp, 'tls', variant)), 'yaml'), { configFlag: '--bootstrap', threads: 2 });
    cleanup.push(() => shuttle.stop());
    const { admin } = await shuttle.ready();
    const get = () => httpsGet(port, pki.read('ca.pem'));
    const first = await eventually(() => get().catch((err) => ({ body: String(err.message), serial: '' })), (r) => r.body === 'from the TLS upstream', 20_000);
    expect(first.serial).toBe(serial('web1'));

    // Rotation: the secret changes; new handshakes present the new certificate.
    cp.set('sds', [certSecret('web2'), { name: 'ROOTCA', validation_context: { trusted_ca: { inline_string: pki.read('ca.pem') } } }]);
    await eventually(() => get().catch(() => ({ body: '', serial: '' })), (r) => r.serial === serial('web2') && r.body === 'from the TLS upstream', 20_000);
    expect(cp.nacks()).toEqual([]);
    // The dump names the secrets, never their keys.
    const dump = await (await fetch(`${admin}/config_dump`)).text();
    expect(dump).not.toContain('PRIVATE KEY');
    expect(dump).toContain('xds-sds:web-cert@');

    // A host that does not present the SPIFFE identity is refused: the cluster's SAN check holds.
    cp.set('cds', [edsCluster('backend', {
      transport_socket: { name: 'envoy.transport_sockets.tls', typed_config: { '@type': `${TLS}.UpstreamTlsContext`, sni: 'backend.test', common_tls_context: {
        combined_validation_context: {
          default_validation_context: { match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { exact: 'spiffe://cluster.local/ns/default/sa/other' } }] },
          validation_context_sds_secret_config: { name: 'ROOTCA', sds_config: ads },
        },
      } } },
    })]);
    await eventually(() => get().catch(() => ({ body: '', serial: '' })), (r) => r.body !== 'from the TLS upstream' && r.body !== '', 20_000);
  });

  it('a listener waits for its secret; a secret whose key does not match is NACKed and the served certificate stays', { timeout: 60_000 }, async () => {
    const pki = makePki();
    pki.issue('web1', { cn: 'web.test', sans: 'DNS:web.test' });
    pki.issue('web2', { cn: 'web.test', sans: 'DNS:web.test' });
    const serial = (name: string) => new X509Certificate(pki.read(`${name}.pem`)).serialNumber;
    const upstream = http.createServer((_, res) => res.end('from the plain upstream'));
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    cleanup.push(() => upstream.close());

    const cp = new XdsControlPlane();
    await cp.start();
    cleanup.push(() => cp.kill());
    cp.set('cds', [edsCluster('backend')]);
    cp.set('eds', [loadAssignment('backend', [{ port: (upstream.address() as { port: number }).port }])]);
    const port = await closedPort();
    cp.set('lds', [webListener(port)]);
    cp.set('rds', [routeConfig('web-routes', [{ match: { prefix: '/' }, route: { cluster: 'backend' } }])]);

    const shuttle = new ShuttleProcess(writeTempConfig(YAML.stringify(bootstrapFor(cp, 'warm', variant)), 'yaml'), { configFlag: '--bootstrap', threads: 2 });
    cleanup.push(() => shuttle.stop());
    const { admin } = await shuttle.ready();
    const get = () => httpsGet(port, pki.read('ca.pem'));

    // Shuttle asks for the secret the listener names; until it comes, the listener warms: nothing listens.
    await eventually(async () => cp.requests.filter((r) => r.type === 'sds' && r.resource_names.includes('web-cert')), (r) => r.length > 0, 20_000);
    await eventually(async () => (await (await fetch(`${admin}/config_dump`)).json()) as { xds?: { warming?: { listeners: string[] } } }, (d) => !!d.xds?.warming?.listeners.includes('web'), 20_000);
    await expect(get()).rejects.toThrow(/ECONNREFUSED/);

    const secret = (cert: string, key: string) => ({ name: 'web-cert', tls_certificate: { certificate_chain: { inline_string: pki.read(`${cert}.pem`) }, private_key: { inline_string: pki.read(`${key}.key`) } } });
    cp.set('sds', [secret('web1', 'web1')]);
    const first = await eventually(() => get().catch((err) => ({ body: String(err.message), serial: '' })), (r) => r.body === 'from the plain upstream', 20_000);
    expect(first.serial).toBe(serial('web1'));
    expect(cp.nacks()).toEqual([]);

    // web2's certificate with web1's key: refused with the field, and web1 keeps serving.
    cp.set('sds', [secret('web2', 'web1')]);
    const nack = await eventually(async () => cp.nacks('sds'), (n) => n.length > 0, 20_000);
    expect(nack[0].error_detail?.message).toContain('tls_certificate: private_key does not match certificate_chain');
    expect((await get()).serial).toBe(serial('web1'));
  });
});

