/**
 * The floor of Node's sockets for idle connections: a bare `net` server that answers each read
 * with a canned reply and keeps the connection open (no proxying, no parsing, no upstream).
 *   http: a keep-alive HTTP/1.1 200;  bolt: a SOFA Bolt v1 heartbeat answer to the request's id.
 *   node bench/support/node-idle-server.ts PORT http|bolt      (prints "ready")
 */
import net from 'node:net';

const HTTP_RESPONSE = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 24\r\n\r\nhello from the upstream\n');
const bolt = process.argv[3] === 'bolt';

/** A Bolt v1 response (20 bytes): heartbeat, status success, all lengths 0, the request's id. */
function heartbeatAnswer(request: Buffer): Buffer {
  const b = Buffer.alloc(20);
  b[0] = 1; // proto v1
  b[1] = 0; // type: response
  b.writeUInt16BE(0, 2); // cmd: heartbeat
  b[4] = 1; // ver2
  if (request.length >= 9) request.copy(b, 5, 5, 9); // request id
  b[9] = 1; // codec: hessian2
  return b; // status 0, class, header and content lengths 0
}

const server = net.createServer({ noDelay: true }, (s) => {
  s.on('error', () => {});
  s.on('data', (d: Buffer) => s.write(bolt ? heartbeatAnswer(d) : HTTP_RESPONSE));
});
server.listen({ host: '127.0.0.1', port: Number(process.argv[2]), backlog: 4096 }, () => process.stdout.write('ready\n'));
process.on('SIGTERM', () => process.exit(0));
