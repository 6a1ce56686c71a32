/**
 * The acceptor's fast path (src/acceptor/raw-accept.ts): accepted connections taken as bare TCP
 * handles from the listening handle, moved to another thread and wrapped there once. Real sockets
 * on 127.0.0.1 and a real worker thread.
 */
import net from 'node:net';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { acceptHandles, closeAccepted, transferList, type AcceptedHandle } from '../src/acceptor/raw-accept.ts';

const moduleUrl = pathToFileURL(new URL('../src/acceptor/raw-accept.ts', import.meta.url).pathname).href;

let cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function listening(onHandle: (h: AcceptedHandle) => void, wantSocket = () => false): Promise<{ server: net.Server; port: number; fast: boolean }> {
  const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanup.push(() => new Promise((r) => server.close(r)));
  const fast = acceptHandles(server, onHandle, wantSocket);
  return { server, port: (server.address() as net.AddressInfo).port, fast };
}

/** Connects, writes `bytes` at once, half-closes, and collects what comes back until the close. */
function exchange(port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true }, () => c.end(bytes));
    let got = '';
    c.setEncoding('latin1');
    c.on('data', (d: string) => (got += d));
    c.on('error', reject);
    c.on('close', () => resolve(got));
  });
}

describe('raw accept', () => {
  it('hands a connection to another thread as a bare handle: bytes sent before the move arrive, and it stays half-open', async () => {
    // The worker wraps each handle (socketOnHandle) and answers in upper case; after the client's
    // FIN it still writes "bye" a little later (half-open: the socket did not end with the read
    // side), then ends.
    const worker = new Worker(`
      const { parentPort, workerData } = require('node:worker_threads');
      import(workerData.moduleUrl).then(({ socketOnHandle }) => {
        parentPort.on('message', (m) => {
          const s = socketOnHandle(m.handle);
          s.setEncoding('latin1');
          s.on('data', (d) => s.write(d.toUpperCase()));
          s.on('end', () => setTimeout(() => s.end('bye'), 20));
          s.on('error', () => {});
          s.resume();
        });
        parentPort.postMessage('ready');
      });
    `, { eval: true, workerData: { moduleUrl } });
    cleanup.push(() => worker.terminate());
    await new Promise((r) => worker.once('message', r));
    let handles = 0;
    const { server, port, fast } = await listening((h) => {
      handles++;
      worker.postMessage({ handle: h }, transferList(h));
    });
    let sockets = 0;
    server.on('connection', () => sockets++);
    expect(fast).toBe(true);
    const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => exchange(port, `hello ${i}`)));
    expect(replies).toEqual(Array.from({ length: 20 }, (_, i) => `HELLO ${i}bye`));
    expect(handles).toBe(20);
    expect(sockets).toBe(0);
  });

  it("takes Node's path (a 'connection' socket) when the caller wants one", async () => {
    let wantSocket = true;
    let handles = 0;
    const { server, port } = await listening((h) => {
      handles++;
      closeAccepted(h);
    }, () => wantSocket);
    server.on('connection', (s: net.Socket) => {
      s.on('data', (d) => s.end(`socket:${d}`));
      s.resume();
    });
    expect(await exchange(port, 'a')).toBe('socket:a');
    expect(handles).toBe(0);
    wantSocket = false;
    // A handle closed unserved: the client sees the connection close with no reply.
    expect(await exchange(port, 'b')).toBe('');
    expect(handles).toBe(1);
  });
});
