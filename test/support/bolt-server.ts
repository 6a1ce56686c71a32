/**
 * A sofa-rpc-node RpcServer in its own process (so a test can kill it), for the Bolt e2e tests.
 *   node test/support/bolt-server.ts PORT NAME [bolt|dubbo]
 * Serves com.example.Echo (echo, slow with an optional tag to answer with) and prints "ready" when listening, and "slow call
 * started" when a slow call begins.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { RpcServer } = require('sofa-rpc-node').server;
const [port, name, protocol] = [Number(process.argv[2]), process.argv[3], process.argv[4] ?? 'bolt'];
const logger = { info() {}, warn() {}, debug() {}, error() {} };
const dubbo = protocol === 'dubbo';
// Dubbo services are found by interface and version.
const server = new RpcServer({ logger, port, ...(dubbo ? { protocol: require('dubbo-remoting') } : {}) });
const v = dubbo ? { version: '1.0.0' } : {};
server.addService({ interfaceName: 'com.example.Echo', ...v }, {
  async echo(s: string) {
    return `${name}:${s}`;
  },
  async slow(ms: number, tag?: string) {
    process.stdout.write('slow call started\n'); // tests wait for this before killing the server
    await new Promise((r) => setTimeout(r, ms));
    return tag === undefined ? `${name}:slow` : `${name}:slow:${tag}`;
  },
});
server.addService({ interfaceName: 'com.example.Other', ...v }, {
  async who() {
    return `${name}:other`;
  },
});
await server.start();
process.stdout.write('ready\n');
