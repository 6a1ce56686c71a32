/**
 * The "plain Node proxy" baseline for bench/http.ts: node:http server + http.request with a
 * keep-alive agent, piping bodies. What a Node developer writes first.
 *   node bench/support/node-proxy.ts LISTEN_PORT UPSTREAM_PORT
 */
import http from 'node:http';

const [listenPort, upstreamPort] = process.argv.slice(2).map(Number);
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

const server = http.createServer((req, res) => {
  const up = http.request({ host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers: req.headers, agent }, (upRes) => {
    res.writeHead(upRes.statusCode ?? 502, upRes.headers);
    upRes.pipe(res);
  });
  up.on('error', () => {
    res.writeHead(502);
    res.end();
  });
  req.pipe(up);
});
server.keepAliveTimeout = 60_000;
server.listen(listenPort, '127.0.0.1', () => process.stdout.write('ready\n'));
process.on('SIGTERM', () => process.exit(0));
