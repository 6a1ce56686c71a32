/**
 * Worker thread entry. A worker owns its connections from accept (or hand-off) to close and runs
 * the whole pipeline for them; it shares nothing mutable with other workers except the shared
 * tables.
 *
 *   handoff:   main ──postMessage(socket)──▶ worker ──▶ listener pipeline
 *   reuseport: kernel ──accept──▶ worker's own listener ──▶ listener pipeline
 *
 * Config generations: a new snapshot replaces the runtime (clusters, routers) for new
 * connections and new requests; open connections and in-flight requests keep the one they
 * started with. Stats and health cells are indexed by stable ids, so nothing is copied.
 */
import net from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';
import { ClusterManager } from '../cluster/cluster-manager.ts';
import { formatAddress } from '../config/address.ts';
import { deepFreeze } from '../config/load.ts';
import type { ListenerConfig, ShuttleConfig } from '../config/schema.ts';
import { ShuttleError } from '../errors.ts';
import { createLogger } from '../log/logger.ts';
import { PoolRegistry, RetryBudget, type HttpListenerSnapshot, type HttpProxyContext } from '../proxy/http/context.ts';
import { HttpConnectionManager, type HttpProtocol } from '../proxy/http/connection-manager.ts';
import { boltProtocol } from '../proxy/rpc/bolt.ts';
import { MuxPoolRegistry, type RpcListenerSnapshot, type RpcProxyContext } from '../proxy/rpc/context.ts';
import { dubboProtocol } from '../proxy/rpc/dubbo.ts';
import type { RpcProtocol } from '../proxy/rpc/protocol.ts';
import { RpcConnection } from '../proxy/rpc/rpc-connection.ts';
import { detectProtocol, type ProtocolName } from '../codecs/registry.ts';
import { TcpProxySession } from '../proxy/tcp/tcp-proxy.ts';
import { Router } from '../router/router.ts';
import { RpcRouter } from '../router/rpc-router.ts';
import { MAX_HOSTS, type EntityIds } from '../shared/directory.ts';
import { UpstreamReporter } from '../shared/events.ts';
import { HealthTable } from '../shared/health-table.ts';
import { LoadTable, WorkerState } from '../shared/load-table.ts';
import { Ring } from '../shared/ring.ts';
import { decodeSnapshot } from '../shared/snapshot.ts';
import { StatsLayout, StatsTable } from '../shared/stats-table.ts';
import type { BoundListener, MainToWorker, WorkerInit, WorkerToMain } from './messages.ts';
import { startProfiler } from './profiler.ts';
import { WorkerTelemetry } from './telemetry.ts';

const init = workerData as WorkerInit;
const stopProfiler = startProfiler(init.workerId);
const port = parentPort!;
const { logger, flush, flushSync } = createLogger({ level: init.logLevel, worker: init.workerId });
const loadTable = new LoadTable(init.loadTable);
const health = new HealthTable(init.health, MAX_HOSTS);
const reporter = new UpstreamReporter(new Ring(init.events));
const pools = new PoolRegistry();
const muxPools = { bolt: new MuxPoolRegistry(boltProtocol), dubbo: new MuxPoolRegistry(dubboProtocol) };
const retryBudget = new RetryBudget();
/** This worker's connections per host id, across generations (least connections). */
const hostLoad = new Int32Array(MAX_HOSTS);

/** What a worker holds open for one downstream connection, whatever its protocol. */
interface ProxiedConnection {
  /** Finish at the next request boundary (HTTP) or when the peer is done (TCP). */
  drain(): void;
  abort(error: ShuttleError): void;
}

interface ListenerRuntime {
  config: ListenerConfig;
  /** Stable id: the listener's stats cells. */
  id: number;
  http: (HttpProxyContext & { own: HttpListenerSnapshot }) | undefined;
  rpc: (RpcProxyContext & { own: RpcListenerSnapshot }) | undefined;
}

/** One config generation, as this worker runs it. */
interface Runtime {
  generation: number;
  config: ShuttleConfig;
  telemetry: WorkerTelemetry;
  clusters: ClusterManager;
  listeners: Map<string, ListenerRuntime>;
}

const statsBuffer = init.stats;
let runtime = buildRuntime(init.generation, deepFreeze(init.config), init.ids);
/** Open connections, by the listener they came in on. */
const open = new Map<ProxiedConnection, string>();
const ownServers = new Map<string, { server: net.Server; address: string }>();
let connectionSeq = 0;
let draining = false;

function buildRuntime(generation: number, config: ShuttleConfig, ids: EntityIds): Runtime {
  const layout = new StatsLayout(config, ids);
  const telemetry = new WorkerTelemetry(new StatsTable(layout, statsBuffer).row(init.slot), layout, reporter, (d) => loadTable.streamsChanged(init.slot, d));
  const clusters = new ClusterManager(config, health, ids, hostLoad);
  const listeners = new Map<string, ListenerRuntime>();
  config.listeners.forEach((l, i) => {
    const id = ids.listeners[i];
    let http: ListenerRuntime['http'];
    let rpc: ListenerRuntime['rpc'];
    if (l.rpc) {
      const own: RpcListenerSnapshot = { listener: l, listenerIndex: id, router: new RpcRouter(l.rpc.routes), clusters, telemetry };
      rpc = { snapshot: () => runtime.listeners.get(l.name)?.rpc?.own ?? own, own, pools: muxPools, logger };
    }
    if (l.virtual_hosts) {
      const own: HttpListenerSnapshot = { listener: l, listenerIndex: id, router: new Router(l.virtual_hosts ?? []), clusters, telemetry };
      http = {
        // A request starts under the newest generation that still has this listener.
        snapshot: () => runtime.listeners.get(l.name)?.http?.own ?? own,
        own,
        pools,
        retryBudget,
        logger,
        draining: () => draining || !runtime.listeners.has(l.name),
      };
    }
    listeners.set(l.name, { config: l, id, http, rpc });
  });
  return { generation, config, telemetry, clusters, listeners };
}

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
  const entry = runtime.listeners.get(listenerName);
  if (!entry || draining) {
    socket.destroy();
    loadTable.connectionClosed(init.slot);
    return;
  }
  const id = `${init.workerId}-${++connectionSeq}`;
  const proto = entry.config.protocol;
  if (proto === 'auto') {
    // The first bytes tell the protocol; the worker reads them (the acceptor must not: it would
    // make the socket untransferable).
    const allowed: ProtocolName[] = [];
    if (entry.rpc) allowed.push('bolt', 'dubbo');
    if (entry.http) allowed.push('http2', 'http1');
    detectProtocol(socket, allowed, entry.config.http.request_headers_timeout, (detected, first) => {
      if (socket.destroyed) return void loadTable.connectionClosed(init.slot);
      if (detected === 'bolt') return startRpc(socket, id, boltProtocol, entry.rpc!, listenerName, first);
      if (detected === 'dubbo') return startRpc(socket, id, dubboProtocol, entry.rpc!, listenerName, first);
      if (detected === 'http1' || detected === 'http2') return startHttp(socket, id, detected === 'http2' ? 'HTTP/2' : 'HTTP/1.1', entry.http!, listenerName, first);
      logger.info({ conn: id, listener: listenerName, detected }, 'protocol not served on this listener; connection closed');
      socket.destroy();
      loadTable.connectionClosed(init.slot);
    });
    return;
  }
  if (proto === 'http') {
    const codec = entry.config.http.codec;
    if (codec !== 'auto') return startHttp(socket, id, codec === 'http2' ? 'HTTP/2' : 'HTTP/1.1', entry.http!, listenerName);
    // HTTP/1.1 and HTTP/2 (prior knowledge) on one port: anything but the HTTP/2 preface is
    // HTTP/1, whose codec answers malformed bytes with a 400.
    detectProtocol(socket, ['http2', 'http1'], entry.config.http.request_headers_timeout, (detected, first) => {
      if (socket.destroyed) return void loadTable.connectionClosed(init.slot);
      startHttp(socket, id, detected === 'http2' ? 'HTTP/2' : 'HTTP/1.1', entry.http!, listenerName, first);
    });
    return;
  }
  if (proto === 'bolt') return startRpc(socket, id, boltProtocol, entry.rpc!, listenerName);
  if (proto === 'dubbo') return startRpc(socket, id, dubboProtocol, entry.rpc!, listenerName);
  const session = new TcpProxySession(socket, {
    id,
    listener: entry.config,
    listenerIndex: entry.id,
    cluster: runtime.clusters.get(entry.config.cluster!)!,
    logger,
    telemetry: runtime.telemetry,
    onClose: closed,
  });
  open.set(session, listenerName);
  session.start();
}

function startHttp(socket: net.Socket, id: string, protocol: HttpProtocol, ctx: HttpProxyContext, listenerName: string, first?: Buffer): void {
  const c = new HttpConnectionManager(socket, id, protocol, ctx, closed);
  open.set(c, listenerName);
  c.start(first !== undefined && first.length > 0 ? first : undefined);
}

function startRpc<F>(socket: net.Socket, id: string, protocol: RpcProtocol<F>, ctx: RpcProxyContext, listenerName: string, first?: Buffer): void {
  const c = new RpcConnection(socket, id, protocol, ctx, closed);
  open.set(c, listenerName);
  c.start(first);
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
      const a = server.address() as net.AddressInfo;
      const address = formatAddress({ host: a.address, port: a.port });
      ownServers.set(listener.name, { server, address });
      resolve({ name: listener.name, address });
    });
  });
}

/** Applies a new generation: new connections and requests use it; open ones finish as they are. */
async function applyConfig(shared: SharedArrayBuffer): Promise<void> {
  const snap = decodeSnapshot(shared);
  const previous = runtime;
  runtime = buildRuntime(snap.generation, snap.config, snap.ids);
  const hostIds = new Set(snap.ids.hosts.flat());
  pools.retain(snap.config, hostIds);
  muxPools.bolt.retain(snap.config, hostIds);
  muxPools.dubbo.retain(snap.config, hostIds);
  // Connections of removed listeners drain; listeners whose protocol changed drain too.
  for (const [conn, name] of open) {
    const next = runtime.listeners.get(name);
    if (!next || next.config.protocol !== previous.listeners.get(name)?.config.protocol) conn.drain();
  }
  if (init.balance === 'reuseport') {
    // This worker owns its listeners: bind the new (or moved) ones first, then close the old.
    for (const l of snap.config.listeners) {
      const own = ownServers.get(l.name);
      const prev = previous.listeners.get(l.name)?.config;
      const moved = prev && (prev.address.host !== l.address.host || prev.address.port !== l.address.port);
      if (own && !moved) continue;
      const old = own?.server;
      await listenOwn(l);
      old?.close();
    }
    for (const [name, own] of ownServers) {
      if (runtime.listeners.has(name)) continue;
      own.server.close();
      ownServers.delete(name);
    }
  }
  logger.info({ generation: snap.generation }, 'config applied');
}

function drain(deadlineMs: number): void {
  if (draining) return;
  draining = true;
  for (const { server } of ownServers.values()) server.close();
  pools.byHost.drainAll();
  // Multiplexed upstream connections stay: draining RPC connections still send on them. They
  // close with the worker.
  logger.info({ open: open.size, deadline_ms: deadlineMs }, 'draining');
  if (open.size === 0) return exit();
  for (const c of open.keys()) c.drain();
  setTimeout(() => {
    logger.warn({ open: open.size }, 'drain deadline passed; closing the remaining connections');
    for (const c of open.keys()) c.abort(new ShuttleError('SHUTTLE_E_DRAIN_DEADLINE', 'internal'));
  }, deadlineMs).unref();
}

let exiting = false;
function exit(): void {
  if (exiting) return;
  exiting = true;
  logger.info('worker stopped');
  void Promise.all([flush(), stopProfiler?.()]).then(() => process.exit(0));
}

/**
 * A bug escaped every per-connection guard: this worker's state can't be trusted, so it dies and
 * is replaced. It first marks itself EXITING (the acceptor stops choosing it) and asks the main
 * thread for exit-now, which arrives after every connection already sent its way: those are
 * handed back (see 'connection'), so no new client is lost with the worker.
 */
let fatal = false;
process.on('uncaughtException', (err) => {
  if (fatal) return;
  fatal = true;
  logger.fatal({ err }, 'uncaught error; this worker exits and is replaced');
  loadTable.setState(init.slot, WorkerState.EXITING);
  send({ type: 'fatal', error: err.message });
});

port.on('message', (msg: MainToWorker) => {
  switch (msg.type) {
    case 'connection':
      if (loadTable.state(init.slot) === WorkerState.EXITING) {
        // Untouched, so still transferable: back to the acceptor for another worker.
        port.postMessage({ type: 'bounce', listener: msg.listener, socket: msg.socket } satisfies WorkerToMain, [msg.socket]);
        break;
      }
      serve(msg.socket, msg.listener);
      break;
    case 'exit-now':
      flushSync();
      process.exit(1);
    case 'drain':
      drain(msg.deadlineMs);
      break;
    case 'config':
      applyConfig(msg.snapshot).then(
        () => send({ type: 'config-applied', generation: msg.generation }),
        (err: Error) => {
          logger.error({ err, generation: msg.generation }, 'config not applied');
          send({ type: 'config-failed', generation: msg.generation, error: err.message });
        },
      );
      break;
  }
});

if (init.balance === 'reuseport') {
  const bound: BoundListener[] = [];
  for (const listener of runtime.config.listeners) {
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
