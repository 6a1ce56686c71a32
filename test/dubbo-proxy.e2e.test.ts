/**
 * Dubbo through the real CLI (2 worker threads): sofa-rpc-node RpcClient and RpcServer speaking
 * Dubbo (the dubbo-remoting protocol), with Shuttle between them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closedPort } from './support/net.ts';
import { startShuttle, testConfig, type ShuttleProcess } from './support/shuttle.ts';

const require = createRequire(import.meta.url);
const { RpcServer } = require('sofa-rpc-node').server;
const { RpcClient } = require('sofa-rpc-node').client;
const dubbo = require('dubbo-remoting');
const protocol = require('dubbo-remoting/lib/protocol');
const quiet = { info() {}, warn() {}, debug() {}, error() {} };

const servers: { close(): Promise<void> }[] = [];
const clients: { close(): Promise<void> }[] = [];
let shuttle: ShuttleProcess;
let dubboPort: number;
let autoPort: number;
let delayedPort: number;
let failoverPort: number;
let admin: string;
let boltServer: ChildProcess;

async function server(name: string): Promise<number> {
  const port = await closedPort();
  const s = new RpcServer({ logger: quiet, port, protocol: dubbo });
  s.addService({ interfaceName: 'com.example.Echo', version: '1.0.0' }, { async echo(x: string) { return `${name}:${x}`; } });
  s.addService({ interfaceName: 'com.example.Other', version: '1.0.0' }, { async who() { return `${name}:other`; } });
  await s.start();
  servers.push(s);
  return port;
}

async function consumer(port: number, interfaceName = 'com.example.Echo') {
  const client = new RpcClient({ logger: quiet, protocol: dubbo });
  clients.push(client);
  await client.ready();
  const c = client.createConsumer({ interfaceName, version: '1.0.0', serverHost: `127.0.0.1:${port}` });
  await c.ready();
  return (method: string, args: unknown[]) => c.invoke(method, args, { responseTimeout: 5_000 }) as Promise<string>;
}

beforeAll(async () => {
  const [a, b] = [await server('a'), await server('b')];
  // A Bolt server too, for the port that serves Bolt, Dubbo and HTTP/1 at once.
  const boltPort = await closedPort();
  const refused = await closedPort();
  boltServer = spawn(process.execPath, [fileURLToPath(new URL('./support/bolt-server.ts', import.meta.url)), String(boltPort), 'bolt'], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve) => boltServer.stdout!.on('data', (d) => String(d).includes('ready') && resolve()));
  const rpc = {
    routes: [
      { match: { service: 'com.example.Other' }, cluster: 'b' },
      { match: { service: 'com.example.Echo', headers: [{ name: 'version', exact: '1.0.0' }] }, cluster: 'a' },
    ],
  };
  shuttle = startShuttle(testConfig({
    listeners: [
      { name: 'dubbo', address: '127.0.0.1:0', protocol: 'dubbo', rpc },
      {
        name: 'auto', address: '127.0.0.1:0', protocol: 'auto',
        rpc: { routes: [{ match: { protocol: 'bolt' }, cluster: 'bolt' }, { match: { protocol: 'dubbo' }, cluster: 'a' }] },
        virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ direct_response: { status: 200, body: 'http here\n' } }] }],
      },
      { name: 'delayed', address: '127.0.0.1:0', protocol: 'dubbo', rpc_filters: [{ name: 'fault', config: { delay: { fixed_delay: '300ms', percentage: 100 } } }], rpc: { routes: [{ cluster: 'a' }] } },
      // Half the calls go first to a port that refuses: sent while connecting, then to a.
      { name: 'failover', address: '127.0.0.1:0', protocol: 'dubbo', rpc: { routes: [{ cluster: 'refused_then_a' }] } },
    ],
    clusters: [
      { name: 'a', hosts: [`127.0.0.1:${a}`] }, { name: 'b', hosts: [`127.0.0.1:${b}`] }, { name: 'bolt', hosts: [`127.0.0.1:${boltPort}`] },
      { name: 'refused_then_a', hosts: [`127.0.0.1:${refused}`, `127.0.0.1:${a}`] },
    ],
  }), { threads: 2 });
  const ready = await shuttle.ready();
  dubboPort = ready.listeners.dubbo.port;
  autoPort = ready.listeners.auto.port;
  delayedPort = ready.listeners.delayed.port;
  failoverPort = ready.listeners.failover.port;
  admin = ready.admin;
}, 30_000);

afterAll(async () => {
  for (const c of clients) await c.close().catch(() => {});
  await shuttle?.stop();
  for (const s of servers) await s.close().catch(() => {});
  boltServer?.kill('SIGKILL');
});

describe('Dubbo proxy', () => {
  it('carries a thousand concurrent calls, every result correct', async () => {
    const invoke = await consumer(dubboPort);
    const results = await Promise.all(Array.from({ length: 1000 }, (_, i) => invoke('echo', [`m${i}`])));
    results.forEach((r, i) => expect(r).toBe(`a:m${i}`));
  });

  // Regression guard: plain sockets read into one buffer per thread, which the next read of any
  // connection overwrites; a call's bytes are copied only if it may be sent after its read. Calls
  // of different sizes from 6 connections (two or more share a worker thread), sent late.
  const heldPastTheirRead = async (port: number) => {
    const invokers = await Promise.all(Array.from({ length: 6 }, () => consumer(port)));
    const args = invokers.map((_, c) => Array.from({ length: 20 }, (_, i) => `c${c}-${i}-${'x'.repeat((c * 20 + i) * 3)}`));
    const results = await Promise.all(invokers.flatMap((invoke, c) => args[c].map((a) => invoke('echo', [a]))));
    expect(results).toEqual(args.flat().map((a) => `a:${a}`));
  };

  it('sends calls held past their read (a fault delay) with their own bytes', () => heldPastTheirRead(delayedPort));

  it('sends calls again with their own bytes when the host they were sent to never connects', () => heldPastTheirRead(failoverPort));

  it('routes by service (and version attachment) to different servers', async () => {
    expect(await (await consumer(dubboPort, 'com.example.Other'))('who', [])).toBe('b:other');
  });

  it('answers heartbeats itself', async () => {
    const hb = protocol.heartbeatEncode(31, {}, { codecType: 'hessian2' });
    const reply = await new Promise<Buffer>((resolve, reject) => {
      const s = net.connect(dubboPort, '127.0.0.1', () => s.write(hb));
      s.once('data', (d: Buffer) => {
        s.destroy();
        resolve(d);
      });
      s.once('error', reject);
    });
    // magic, flag: event + hessian2 (no request bit), status 20, id 31.
    expect([reply[0], reply[1], reply[2] & 0xa0, reply[3], Number(reply.readBigUInt64BE(4))]).toEqual([0xda, 0xbb, 0x20, 20, 31]);
  });

  it('closes a connection that sends a malformed frame, counts it, and keeps serving others', async () => {
    const invoke = await consumer(dubboPort);
    await new Promise<void>((resolve) => {
      const s = net.connect(dubboPort, '127.0.0.1', () => s.write(Buffer.from([0xda, 0xbb, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff])));
      s.on('error', () => {});
      s.once('close', () => resolve());
    });
    expect(await invoke('echo', ['fine'])).toBe('a:fine');
    expect(await (await fetch(`${admin}/metrics`)).text()).toMatch(/shuttle_listener_downstream_cx_protocol_error_total\{listener="dubbo"\} 1/);
  });

  it('serves Dubbo, Bolt and HTTP/1 on one auto-detecting port', async () => {
    expect(await (await consumer(autoPort))('echo', ['auto'])).toBe('a:auto');
    // The protocol is named: sofa-rpc-node keeps the last one used as its process-wide default.
    const bolt = new RpcClient({ logger: quiet, protocol: require('sofa-bolt-node') });
    clients.push(bolt);
    await bolt.ready();
    const boltConsumer = bolt.createConsumer({ interfaceName: 'com.example.Echo', serverHost: `127.0.0.1:${autoPort}` });
    await boltConsumer.ready();
    expect(await boltConsumer.invoke('echo', ['auto'], { responseTimeout: 5_000 })).toBe('bolt:auto');
    expect(await (await fetch(`http://127.0.0.1:${autoPort}/`)).text()).toBe('http here\n');
  });

  it('serves an independent Dubbo client (dubbo2.js DirectlyDubbo)', async () => {
    const { DirectlyDubbo, java } = require('dubbo2.js');
    const d = DirectlyDubbo.from({ dubboAddress: `127.0.0.1:${dubboPort}`, dubboVersion: '2.0.2', dubboInvokeTimeout: 5 });
    const svc = d.proxyService({ dubboInterface: 'com.example.Echo', version: '1.0.0', methods: { echo: (x: string) => [java.String(x)] } });
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => svc.echo(`d2-${i}`)));
    results.forEach((r: { res: string; err: unknown }, i: number) => expect(r).toEqual({ res: `a:d2-${i}`, err: null }));
    d.close?.();
  });
});
