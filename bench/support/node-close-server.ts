/**
 * The floor of Node's sockets for a connection per request: a bare `net` server that answers
 * every read with a canned HTTP/1.1 200 and ends the connection. No proxying, no parsing.
 *   node bench/support/node-close-server.ts PORT      (prints "ready")
 */
import net from 'node:net';

const RESPONSE = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 24\r\nConnection: close\r\n\r\nhello from the upstream\n');
const server = net.createServer({ noDelay: true }, (s) => {
  s.on('error', () => {});
  s.once('data', () => s.end(RESPONSE));
});
server.listen({ host: '127.0.0.1', port: Number(process.argv[2]), backlog: 4096 }, () => process.stdout.write('ready\n'));
process.on('SIGTERM', () => process.exit(0));
