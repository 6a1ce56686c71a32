/**
 * How evenly long-lived connections land on worker threads in each balance mode: what decides
 * the default for an RPC-first proxy, whose clients hold few connections for a long time (Bolt,
 * Dubbo, gRPC pools). Per round, a fresh Shuttle (THREADS workers) gets CONNECTIONS long-lived TCP
 * connections (opened one after another, each kept open); the admin API's /workers says how many
 * each worker holds. Printed per mode: how often the busiest worker holds at least 1.5× its fair
 * share, and the median and worst busiest-worker share, over ROUNDS rounds.
 *
 *   node bench/balance.ts        (env: ROUNDS=20 CONNECTIONS=8 THREADS=2)
 */
import net from 'node:net';
import { freePort, median, startShuttleWith, stop, table } from './support/lib.ts';

const ROUNDS = Number(process.env.ROUNDS ?? 20);
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 8);
const THREADS = Number(process.env.THREADS ?? 2);

const echo = net.createServer((s) => s.pipe(s));
await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
const echoPort = (echo.address() as net.AddressInfo).port;

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('error', reject);
    s.once('connect', () => {
      s.write('x');
      s.once('data', () => resolve(s)); // served by a worker (the echo came back through it)
    });
  });
}

const rows: (string | number)[][] = [];
for (const balance of ['handoff', 'reuseport'] as const) {
  const shares: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const port = await freePort();
    const { child, admin } = await startShuttleWith({
      listeners: [{ name: 'tcp', address: `127.0.0.1:${port}`, cluster: 'echo', access_log: false }],
      clusters: [{ name: 'echo', hosts: [`127.0.0.1:${echoPort}`] }],
    }, THREADS, { balance });
    const sockets: net.Socket[] = [];
    try {
      for (let i = 0; i < CONNECTIONS; i++) sockets.push(await connect(port));
      const body = (await (await fetch(`http://${admin}/workers`)).json()) as { workers: { active_connections: number }[] };
      const counts = body.workers.map((w) => w.active_connections);
      if (counts.reduce((a, b) => a + b, 0) !== CONNECTIONS) throw new Error(`counted ${counts} for ${CONNECTIONS} connections`);
      shares.push(Math.max(...counts) / CONNECTIONS);
    } finally {
      for (const s of sockets) s.destroy();
      await stop(child);
    }
  }
  const fair = 1 / THREADS;
  rows.push([
    balance,
    `${shares.filter((s) => s >= 1.5 * fair).length}/${ROUNDS}`,
    `${(100 * median(shares)).toFixed(0)}%`,
    `${(100 * Math.max(...shares)).toFixed(0)}%`,
  ]);
}
echo.close();
console.log(`\n${CONNECTIONS} long-lived connections on ${THREADS} workers, ${ROUNDS} rounds (fair share ${(100 / THREADS).toFixed(0)}%)\n`);
console.log(table(['balance', 'rounds with the busiest worker ≥ 1.5× fair', 'busiest share, median', 'busiest share, worst'], rows));
