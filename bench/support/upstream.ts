/**
 * Benchmark upstream, run in its own process: an echo server (request/response) and a sink that
 * counts bytes until the client half-closes, then answers with the count.
 * Prints one JSON line: { "echo": port, "sink": port }.
 */
import net from 'node:net';

function listen(handler: (s: net.Socket) => void): Promise<number> {
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (s) => {
    s.on('error', () => {});
    handler(s);
  });
  return new Promise((resolve) => server.listen({ host: '127.0.0.1', port: 0, backlog: 4096 }, () => resolve((server.address() as net.AddressInfo).port)));
}

const echo = await listen((s) => s.pipe(s));
const sink = await listen((s) => {
  let bytes = 0;
  s.on('data', (d: Buffer) => (bytes += d.length));
  s.on('end', () => s.end(`${bytes}\n`));
});
process.stdout.write(`${JSON.stringify({ echo, sink })}\n`);
process.on('SIGTERM', () => process.exit(0));
