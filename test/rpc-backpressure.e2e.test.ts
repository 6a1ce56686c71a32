/**
 * Backpressure toward RPC upstreams: a Bolt upstream that stops reading must stop Shuttle reading
 * the clients that feed it (one read per client at most in memory), not let the proxy buffer
 * everything they send. Without it, a client writing 128 MiB of calls to a stuck upstream grows
 * the proxy by as much.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startShuttle, testConfig } from './support/shuttle.ts';

const require = createRequire(import.meta.url);
const bolt = require('sofa-bolt-node/lib/protocol') as { requestEncode(id: number, req: object, options: object): Buffer };
const opts = { protocolType: 'bolt', codecType: 'hessian2', boltVersion: 1, crcEnable: false, sentReqs: new Map(), classCache: new Map() };

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

function rss(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
}

describe('RPC backpressure', () => {
  it('stops reading a client while the Bolt upstream it feeds does not read: bounded proxy memory', async () => {
    // An upstream that accepts and never reads.
    const held = new Set<net.Socket>();
    const stuck = net.createServer({ pauseOnConnect: true }, (s) => {
      s.on('error', () => {});
      held.add(s);
    });
    await new Promise<void>((r) => stuck.listen(0, '127.0.0.1', r));
    cleanup.push(() => new Promise<void>((r) => {
      for (const s of held) s.destroy();
      stuck.close(() => r());
    }));
    const upstream = `127.0.0.1:${(stuck.address() as net.AddressInfo).port}`;
    const shuttle = startShuttle(testConfig({
      drain_timeout: '1s',
      listeners: [{ name: 'rpc', address: '127.0.0.1:0', protocol: 'bolt', access_log: false, rpc: { routes: [{ cluster: 'stuck' }] } }],
      clusters: [{ name: 'stuck', hosts: [upstream] }],
    }), { threads: 1 });
    cleanup.push(() => shuttle.stop());
    const { ports } = await shuttle.ports();

    const payload = 'x'.repeat(64 * 1024);
    const total = 128 * 1024 * 1024;
    const client = net.connect(ports.rpc, '127.0.0.1');
    client.on('error', () => {});
    cleanup.push(() => client.destroy());
    await new Promise<void>((r) => client.once('connect', () => r()));
    const before = rss(shuttle.pid);
    let written = 0;
    let id = 1;
    // Writes calls while the socket takes them; stops at 128 MiB or when it has been full for 3 s.
    await new Promise<void>((resolve) => {
      let stalled: NodeJS.Timeout | undefined;
      const pump = () => {
        clearTimeout(stalled);
        while (written < total) {
          const frame = bolt.requestEncode(id++, { serverSignature: 'com.example.Echo:1.0', methodName: 'echo', args: [{ $class: 'java.lang.String', $: payload }], timeout: 60_000, requestProps: { service: 'com.example.Echo:1.0' } }, opts);
          written += frame.length;
          if (!client.write(frame)) {
            stalled = setTimeout(resolve, 3_000);
            client.once('drain', pump);
            return;
          }
        }
        resolve();
      };
      pump();
    });
    const grown = rss(shuttle.pid) - before;
    console.log(`RPC backpressure: the client got ${(written / 2 ** 20).toFixed(1)} MiB out before its socket stayed full for 3 s; proxy RSS +${(grown / 2 ** 20).toFixed(1)} MiB`);
    // Kernel buffers on both sides and a read per client hold a few MiB; buffering it all, 128.
    expect(written).toBeLessThan(total / 2);
    expect(grown).toBeLessThan(48 * 1024 * 1024);
  }, 60_000);
});
