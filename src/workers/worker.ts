/**
 * Worker thread entry. A worker owns its connections from accept (or hand-off) to close and runs
 * the whole pipeline for them; it shares nothing mutable with other workers except the shared
 * tables.
 *
 *   handoff:   main ──postMessage(socket)──▶ worker ──▶ listener pipeline
 *   reuseport: kernel ──accept──▶ worker's own listener ──▶ listener pipeline
 */
import net from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';
import { ClusterManager } from '../cluster/cluster-manager.ts';
import { formatAddress } from '../config/address.ts';
import { deepFreeze } from '../config/load.ts';
import type { ListenerConfig } from '../config/schema.ts';
import { ShuttleError } from '../errors.ts';
import { createLogger } from '../log/logger.ts';
import { PoolRegistry, RetryBudget, type HttpProxyContext } from '../proxy/http/context.ts';
import { HttpConnection } from '../proxy/http/http-connection.ts';
import { TcpProxySession } from '../proxy/tcp/tcp-proxy.ts';
import { Router } from '../router/router.ts';
import { HealthTable } from '../shared/health-table.ts';
import { LoadTable } from '../shared/load-table.ts';
import { Ring } from '../shared/ring.ts';
import { StatsLayout, StatsTable } from '../shared/stats-table.ts';
import { WorkerTelemetry } from './telemetry.ts';
import type { BoundListener, MainToWorker, WorkerInit, WorkerToMain } from './messages.ts';

const init = workerData as WorkerInit;
const port = parentPort!;
const config = deepFreeze(init.config);
const { logger, flush, flushSync } = createLogger({ level: init.logLevel, worker: init.workerId });
const loadTable = new LoadTable(init.loadTable);
const layout = new StatsLayout(config);
const telemetry = new WorkerTelemetry(new StatsTable(layout, init.stats).row(init.slot), layout, new Ring(init.events));
const clusters = new ClusterManager(config, new HealthTable(init.health, layout.hosts.length));

/** What a worker holds open for one downstream connection, whatever its protocol. */
interface ProxiedConnection {
  /** Finish at the next request boundary (HTTP) or when the peer is done (TCP). */
  drain(): void;
  abort(error: ShuttleError): void;
}

const pools = new PoolRegistry(telemetry);
const retryBudget = new RetryBudget();

type ListenerRuntime =
  | { kind: 'tcp'; config: ListenerConfig; index: number }
  | { kind: 'http'; config: ListenerConfig; index: number; http: HttpProxyContext };

const listeners = new Map<string, ListenerRuntime>(config.listeners.map((l, index): [string, ListenerRuntime] => {
  if (l.protocol === 'http') {
    const http: HttpProxyContext = {
      listener: l, listenerIndex: index, router: new Router(l.virtual_hosts ?? []), clusters, pools, retryBudget, telemetry, logger,
      draining: () => draining,
    };
    return [l.name, { kind: 'http', config: l, index, http }];
  }
  return [l.name, { kind: 'tcp', config: l, index }];
}));
const open = new Set<ProxiedConnection>();
const ownServers: net.Server[] = [];
let connectionSeq = 0;
let draining = false;

function send(msg: WorkerToMain): void {
  port.postMessage(msg);
}

function closed(c: ProxiedConnection): void {
  open.delete(c);
  loadTable.connectionClosed(init.slot);
  if (draining && open.size === 0) exit();
}

/** A connection that is already counted in this worker's load row. */
function serve(socket: net.Socket, listenerName: string): void {
  const entry = listeners.get(listenerName);
  if (!entry || draining) {
    socket.destroy();
    loadTable.connectionClosed(init.slot);
    return;
  }
  const id = `${init.workerId}-${++connectionSeq}`;
  if (entry.kind === 'http') {
    const c = new HttpConnection(socket, id, entry.http, closed);
    open.add(c);
    c.start();
    return;
  }
  const session = new TcpProxySession(socket, {
    id,
    listener: entry.config,
    listenerIndex: entry.index,
    cluster: clusters.get(entry.config.cluster!)!,
    logger,
    telemetry,
    onClose: closed,
  });
  open.add(session);
  session.start();
}

function listenOwn(listener: ListenerConfig): Promise<BoundListener> {
  return new Promise((resolve, reject) => {
    const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
      loadTable.connectionOpened(init.slot);
      serve(socket, listener.name);
    });
    server.once('error', reject);
    server.listen({ host: listener.address.host, port: listener.address.port, reusePort: true, backlog: listener.backlog }, () => {
      server.off('error', reject);
      server.on('error', (err) => logger.error({ err, listener: listener.name }, 'listener error'));
      ownServers.push(server);
      const a = server.address() as net.AddressInfo;
      resolve({ name: listener.name, address: formatAddress({ host: a.address, port: a.port }) });
    });
  });
}

function drain(deadlineMs: number): void {
  if (draining) return;
  draining = true;
  for (const server of ownServers) server.close();
  pools.drainAll();
  logger.info({ open: open.size, deadline_ms: deadlineMs }, 'draining');
  if (open.size === 0) return exit();
  for (const c of open) c.drain();
  setTimeout(() => {
    logger.warn({ open: open.size }, 'drain deadline passed; closing the remaining connections');
    for (const c of open) c.abort(new ShuttleError('SHUTTLE_E_DRAIN_DEADLINE', 'internal'));
  }, deadlineMs).unref();
}

let exiting = false;
function exit(): void {
  if (exiting) return;
  exiting = true;
  logger.info('worker stopped');
  void flush().then(() => process.exit(0));
}

port.on('message', (msg: MainToWorker) => {
  switch (msg.type) {
    case 'connection':
      serve(msg.socket, msg.listener);
      break;
    case 'drain':
      drain(msg.deadlineMs);
      break;
  }
});

if (init.balance === 'reuseport') {
  const bound: BoundListener[] = [];
  for (const listener of config.listeners) {
    try {
      bound.push(await listenOwn(listener));
    } catch (err) {
      send({ type: 'listen-failed', listener: listener.name, error: (err as Error).message });
      flushSync();
      process.exit(1);
    }
  }
  send({ type: 'ready', listeners: bound });
} else {
  send({ type: 'ready', listeners: [] });
}
logger.debug({ slot: init.slot }, 'worker ready');
