/**
 * A sofa-rpc-node RpcServer in its own process (so a test can kill it), for the Bolt e2e tests.
 *   node test/support/bolt-server.ts PORT NAME
 * Serves com.example.Echo (echo, slow) and prints "ready" when listening, and "slow call
 * started" when a slow call begins.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { RpcServer } = require('sofa-rpc-node').server;
const [port, name] = [Number(process.argv[2]), process.argv[3]];
const logger = { info() {}, warn() {}, debug() {}, error() {} };
const server = new RpcServer({ logger, port });
server.addService({ interfaceName: 'com.example.Echo' }, {
  async echo(s: string) {
    return `${name}:${s}`;
  },
  async slow(ms: number) {
    process.stdout.write('slow call started\n'); // tests wait for this before killing the server
    await new Promise((r) => setTimeout(r, ms));
    return `${name}:slow`;
  },
});
server.addService({ interfaceName: 'com.example.Other' }, {
  async who() {
    return `${name}:other`;
  },
});
await server.start();
process.stdout.write('ready\n');
