/**
 * A sofa-rpc-node RpcServer for Bolt and one for Dubbo (dubbo-remoting) in their own process, for
 * the fuzz run (test/fuzz.e2e.test.ts): a frame that crashes a peer must not take the test with it.
 *
 *   node test/support/rpc-servers.ts NAME BOLT_PORT DUBBO_PORT
 *
 * Serves com.example.Echo and com.example.Fuzz (echo: "<NAME>:<arg>") on both, prints "ready",
 * and counts every request its decoders parsed (the third party's own view of the stream, whether
 * or not a service answers it). A line "count" on stdin is answered with the counts as JSON.
 */
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';

const require = createRequire(import.meta.url);
const { RpcServer } = require('sofa-rpc-node').server;
const bolt = require('sofa-bolt-node');
const dubbo = require('dubbo-remoting');

const [name, boltPort, dubboPort] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const logger = { info() {}, warn() {}, debug() {}, error() {} };
const counts = { bolt: 0, dubbo: 0, boltConnections: 0, dubboConnections: 0, errors: 0 };

async function serve(protocol: unknown, port: number, key: 'bolt' | 'dubbo', version: string | undefined): Promise<void> {
  const server = new RpcServer({ logger, port, protocol });
  const echo = { async echo(s: unknown) { return `${name}:${String(s)}`; } };
  for (const interfaceName of ['com.example.Echo', 'com.example.Fuzz']) server.addService(version ? { interfaceName, version } : { interfaceName }, echo);
  server.on('connection', (conn: { on(e: string, f: () => void): void }) => {
    counts[`${key}Connections`]++;
    conn.on('request', () => counts[key]++);
  });
  server.on('error', () => counts.errors++);
  await server.start();
}

await serve(bolt, boltPort, 'bolt', undefined);
await serve(dubbo, dubboPort, 'dubbo', '1.0.0');
createInterface({ input: process.stdin })
  .on('line', (line) => {
    if (line.trim() === 'count') process.stdout.write(`count ${JSON.stringify(counts)}\n`);
  })
  .on('close', () => process.exit(0)); // the test process went away
process.stdout.write('ready\n');
