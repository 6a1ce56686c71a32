/**
 * Starts test/support/bolt-server.ts (a sofa-rpc-node RpcServer) in its own process, so a test can
 * kill it, and reports when it begins a slow call.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { closedPort } from './net.ts';

const SERVER = fileURLToPath(new URL('./bolt-server.ts', import.meta.url));

export interface BoltUpstream {
  child: ChildProcess;
  port: number;
  /** Resolves once the server has begun serving a slow call (it has calls in flight). */
  slowCallStarted(): Promise<void>;
}

export async function startBoltServer(name: string): Promise<BoltUpstream> {
  const port = await closedPort();
  const child = spawn(process.execPath, [SERVER, String(port), name], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d) => String(d).includes('ready') && resolve());
    child.once('exit', (code) => reject(new Error(`bolt server ${name} exited (${code})`)));
  });
  const slowCallStarted = () => new Promise<void>((resolve) => {
    const onData = (d: Buffer) => {
      if (!String(d).includes('slow call started')) return;
      child.stdout!.off('data', onData);
      resolve();
    };
    child.stdout!.on('data', onData);
  });
  return { child, port, slowCallStarted };
}

const require = createRequire(import.meta.url);
const { RpcClient } = require('sofa-rpc-node').client;
const quiet = { info() {}, warn() {}, debug() {}, error() {} };

/**
 * A sofa-rpc-node consumer of `interfaceName` through the proxy at `port`: invoke(method, args).
 * Its client joins `clients`, for the test to close.
 */
export async function boltConsumer(port: number, clients: { close(): Promise<void> }[], interfaceName = 'com.example.Echo') {
  const client = new RpcClient({ logger: quiet });
  clients.push(client);
  await client.ready();
  const c = client.createConsumer({ interfaceName, serverHost: `127.0.0.1:${port}` });
  await c.ready();
  return (method: string, args: unknown[], timeout = 5_000) => c.invoke(method, args, { responseTimeout: timeout }) as Promise<string>;
}
