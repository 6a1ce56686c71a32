/**
 * The "plain Node proxy" baseline for bench/http.ts and bench/tls.ts: node:http (or node:https
 * with CERT and KEY files) server + http.request with a keep-alive agent, piping bodies. What a
 * Node developer writes first.
 *   node bench/support/node-proxy.ts LISTEN_PORT UPSTREAM_PORT [CERT KEY]
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';

const [listenPort, upstreamPort] = process.argv.slice(2, 4).map(Number);
const [certFile, keyFile] = process.argv.slice(4, 6);
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
  const up = http.request({ host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers: req.headers, agent }, (upRes) => {
    res.writeHead(upRes.statusCode ?? 502, upRes.headers);
    upRes.pipe(res);
  });
  up.on('error', () => {
    res.writeHead(502);
    res.end();
  });
  req.pipe(up);
};
const server = certFile ? https.createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) }, handler) : http.createServer(handler);
server.keepAliveTimeout = 60_000;
server.listen(listenPort, '127.0.0.1', () => process.stdout.write('ready\n'));
process.on('SIGTERM', () => process.exit(0));
