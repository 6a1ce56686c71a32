/**
 * A small GET to a host of a cluster, for filters that need a document from a service (the JWKS
 * of jwt_authn): the host is chosen by the cluster's balancer, TLS is the cluster's own, the
 * response is bounded in size and time. Not on the request path: used at most every few minutes.
 */
import http from 'node:http';
import https from 'node:https';
import type { ClusterManager } from '../../cluster/cluster-manager.ts';

const MAX_BODY = 1024 * 1024;

export function clusterFetcher(clusters: () => ClusterManager) {
  return (clusterName: string, path: string, timeoutMs: number, authority: string): Promise<{ status: number; body: Buffer }> =>
    new Promise((resolve, reject) => {
      const cluster = clusters().get(clusterName);
      if (!cluster) return reject(new Error(`unknown cluster ${clusterName}`));
      const host = cluster.lb.choose();
      if (!host) return reject(new Error(`cluster ${clusterName} has no healthy host`));
      const t = cluster.tls;
      const opts = { host: host.host, port: host.port, path, method: 'GET', headers: { host: authority, accept: 'application/json' }, timeout: timeoutMs };
      const req = t ? https.request({ ...opts, ...t.options, servername: t.sni ?? authority.replace(/:\d+$/, '') }) : http.request(opts);
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs}ms`)));
      req.on('error', reject);
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_BODY) return req.destroy(new Error('response too large'));
          chunks.push(c);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      });
      req.end();
    });
}
