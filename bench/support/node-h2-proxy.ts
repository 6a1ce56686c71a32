/**
 * The "plain Node proxy" baseline for bench/h2.ts: a node:http2 server whose streams are
 * forwarded on one node:http2 client session to the upstream. What a Node developer writes first.
 *   node bench/support/node-h2-proxy.ts LISTEN_PORT UPSTREAM_PORT
 */
import http2 from 'node:http2';

const [listenPort, upstreamPort] = process.argv.slice(2).map(Number);
let session = http2.connect(`http://127.0.0.1:${upstreamPort}`);
session.on('error', () => {});

const server = http2.createServer();
server.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
  if (session.destroyed || session.closed) {
    session = http2.connect(`http://127.0.0.1:${upstreamPort}`);
    session.on('error', () => {});
  }
  const out: http2.OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(headers)) if (k !== ':scheme' || v) out[k] = v;
  const up = session.request(out);
  up.on('response', (h) => {
    // (The client may have gone away meanwhile: h2load resets its streams at the end of a run.)
    if (stream.destroyed || stream.closed) return void up.destroy();
    const back: http2.OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(h)) back[k] = v;
    stream.respond(back);
  });
  up.on('error', () => stream.destroy());
  stream.on('error', () => up.destroy());
  up.pipe(stream);
  stream.pipe(up);
});
server.listen(listenPort, '127.0.0.1', () => process.stdout.write('ready\n'));
process.on('SIGTERM', () => process.exit(0));
