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
import { adoptTransferred } from '../net/socket-io.ts';
import { isSocket, socketOnHandle, transferList } from '../acceptor/raw-accept.ts';
import type net from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';
import { Cluster, ClusterManager } from '../cluster/cluster-manager.ts';
import { deepFreeze } from '../config/load.ts';
import type { ListenerConfig, ShuttleConfig } from '../config/schema.ts';
import { ShuttleError } from '../errors.ts';
import { createLogger, type Logger } from '../log/logger.ts';
import { AccessLogs } from '../log/access-log.ts';
import { PoolRegistry, RetryBudget, type HttpListenerSnapshot, type HttpProxyContext } from '../proxy/http/context.ts';
import { HttpConnectionManager, type HttpProtocol } from '../proxy/http/connection-manager.ts';
import { boltProtocol } from '../proxy/rpc/bolt.ts';
import { MuxPoolRegistry, type RpcListenerSnapshot, type RpcProxyContext } from '../proxy/rpc/context.ts';
import { dubboProtocol } from '../proxy/rpc/dubbo.ts';
import type { RpcProtocol } from '../proxy/rpc/protocol.ts';
import { RpcConnection } from '../proxy/rpc/rpc-connection.ts';
import { detectProtocol, type ProtocolName } from '../codecs/registry.ts';
import type { Secrets } from '../config/secrets.ts';
import { serverNameMatches, sniffClientHello } from '../net/client-hello.ts';
import { TlsTerminator, type TlsCounters, type TlsInfo } from '../net/tls-server.ts';
import { L } from '../shared/stats-table.ts';
import type tls from 'node:tls';
import { TcpProxySession } from '../proxy/tcp/tcp-proxy.ts';
import { Router } from '../router/router.ts';
import { RpcRouter } from '../router/rpc-router.ts';
import { MAX_HOSTS, type EntityIds } from '../shared/directory.ts';
import { UpstreamReporter } from '../shared/events.ts';
import { HealthTable } from '../shared/health-table.ts';
import { LoadTable, WorkerState } from '../shared/load-table.ts';
import { Ring } from '../shared/ring.ts';
import { decodeSnapshot } from '../shared/snapshot.ts';
import type { FilterCounter } from '../filters/api.ts';
import { HttpFilterChain, RpcFilterChain } from '../filters/chain.ts';
import { clusterFetcher } from '../filters/shared/cluster-fetch.ts';
import { PolicyTable } from '../filters/shared/policy-table.ts';
import { StatsLayout, StatsTable } from '../shared/stats-table.ts';
import { RequestTable } from '../shared/request-table.ts';
import type { BoundListener, HostsUpdate, LentListener, MainToWorker, WorkerInit, WorkerToMain } from './messages.ts';
import { OwnListeners } from './own-listeners.ts';
import { startProfiler } from './profiler.ts';
import { OutgoingMigration } from './outgoing-migration.ts';
import type { MigratedState } from '../upgrade/migration.ts';
import type { Http2MigratedState } from '../codecs/http2/connection.ts';
import { WorkerTelemetry } from './telemetry.ts';

const init = workerData as WorkerInit;
const stopProfiler = startProfiler(init.workerId);
const port = parentPort!;
const { logger, flush, flushSync: flushLogSync } = createLogger({ level: init.logLevel, worker: init.workerId, format: init.logFormat, colorize: init.colorize });
const accessLogs = new AccessLogs(logger, init.configFile);
const flushSync = () => {
  accessLogs.flushSync();
  flushLogSync();
};
const loadTable = new LoadTable(init.loadTable);
const health = new HealthTable(init.health, MAX_HOSTS);
const reporter = new UpstreamReporter(new Ring(init.events), health);
const pools = new PoolRegistry();
const muxPools = { bolt: new MuxPoolRegistry(boltProtocol), dubbo: new MuxPoolRegistry(dubboProtocol) };
const retryBudget = new RetryBudget();
/** This worker's connections per host id, across generations (least connections). */
const hostLoad = new Int32Array(MAX_HOSTS);
const policy = new PolicyTable(init.policy, init.slot);
const fetchFromCluster = clusterFetcher(() => runtime.clusters);

/** What a worker holds open for one downstream connection, whatever its protocol. */
interface ProxiedConnection {
  /** Finish at the next request boundary (HTTP) or when the peer is done (TCP). */
  drain(): void;
  abort(error: ShuttleError): void;
}

interface ListenerRuntime {
  config: ListenerConfig;
  /** TLS termination (the listener's own, kept across generations), when it has `tls`. */
  tls: TlsTerminator | undefined;
  /** Stable id: the listener's stats cells. */
  id: number;
  http: (HttpProxyContext & { own: HttpListenerSnapshot }) | undefined;
  rpc: (RpcProxyContext & { own: RpcListenerSnapshot }) | undefined;
  /** What this listener's proxies log through (its access log may go elsewhere). */
  logger: Logger;
}

/** One config generation, as this worker runs it. */
interface Runtime {
  generation: number;
  config: ShuttleConfig;
  telemetry: WorkerTelemetry;
  clusters: ClusterManager;
  listeners: Map<string, ListenerRuntime>;
  /** The generation's filter chains (closed when it is replaced: their refresh timers stop). */
  chains: { close(): void }[];
  secrets: Secrets;
}

/** TLS terminators by listener name: they outlive generations (handshakes in flight, tickets). */
const terminators = new Map<string, TlsTerminator>();

const statsBuffer = init.stats;
const requestRow = new RequestTable(init.requests).row(init.slot);
let runtime = buildRuntime(init.generation, deepFreeze(init.config), init.ids, init.secrets);
/** Open connections, by the listener they came in on. */
const open = new Map<ProxiedConnection, string>();
/** reuseport: this worker's own listening sockets. */
const own = new OwnListeners(
  (socket, listener) => {
    loadTable.connectionOpened(init.slot);
    serve(socket, listener);
  },
  (err, listener) => logger.error({ err, listener }, 'listener error'),
);
let connectionSeq = 0;
let draining = false;
/** Old process in an upgrade: connections move to the new process (upgrade/migration.ts). */
const migration = new OutgoingMigration(send, logger);

/** ALPN a TLS listener offers unless its config says: what its protocol can serve. */
function defaultAlpn(l: ListenerConfig): string[] {
  if (!l.virtual_hosts) return [];
  if (l.protocol === 'http' && l.http.codec === 'http1') return ['http/1.1'];
  if (l.protocol === 'http' && l.http.codec === 'http2') return ['h2'];
  return ['h2', 'http/1.1'];
}

function terminatorFor(l: ListenerConfig, secrets: Secrets): TlsTerminator {
  let t = terminators.get(l.name);
  if (!t) {
    t = new TlsTerminator(init.ticketKeys, tlsCounters(l.name));
    terminators.set(l.name, t);
  }
  t.configure(l.tls!, secrets, defaultAlpn(l));
  return t;
}

/** Handshake outcomes in the listener's counters (of the newest generation that has it). */
function tlsCounters(listenerName: string): TlsCounters {
  const cell = (field: number) => {
    const e = runtime.listeners.get(listenerName);
    if (e) runtime.telemetry.row[runtime.telemetry.layout.listener(e.id) + field]++;
  };
  return {
    handshake(info) {
      cell(L.ssl_handshake);
      if (info.resumed) cell(L.ssl_session_reused);
      if (info.version === 'TLSv1.3') cell(L.ssl_tls13);
      else if (info.version === 'TLSv1.2') cell(L.ssl_tls12);
    },
    failed(reason, err, remote) {
      cell(L[`ssl_handshake_error_${reason}`]);
      logger.debug({ listener: listenerName, reason, remote: remote ?? null, err: err.message }, 'TLS handshake failed');
    },
  };
}

function buildRuntime(generation: number, config: ShuttleConfig, ids: EntityIds, secrets: Secrets): Runtime {
  const layout = new StatsLayout(config, ids);
  const telemetry = new WorkerTelemetry(new StatsTable(layout, statsBuffer).row(init.slot), requestRow, layout, reporter, (d) => loadTable.streamsChanged(init.slot, d));
  const clusters = new ClusterManager(config, health, ids, hostLoad, secrets, policy);
  const listeners = new Map<string, ListenerRuntime>();
  const chains: { close(): void }[] = [];
  config.listeners.forEach((l, i) => {
    const id = ids.listeners[i];
    let http: ListenerRuntime['http'];
    let rpc: ListenerRuntime['rpc'];
    const filterContext = { policy, logger, count: (c: FilterCounter) => telemetry.filterDecision(id, c), fetch: fetchFromCluster };
    const listenerLogger = accessLogs.loggerFor(l);
    if (l.rpc) {
      const filters = l.rpc_filters.length > 0 ? new RpcFilterChain(l.name, l.rpc_filters, l.rpc.routes, filterContext) : undefined;
      if (filters) chains.push(filters);
      const own: RpcListenerSnapshot = { listener: l, listenerIndex: id, router: new RpcRouter(l.rpc.routes), clusters, telemetry, filters };
      rpc = { snapshot: () => runtime.listeners.get(l.name)?.rpc?.own ?? own, own, pools: muxPools, logger: listenerLogger };
    }
    if (l.virtual_hosts) {
      const filters = l.http_filters.length > 0 ? new HttpFilterChain(l.name, l.http_filters, (l.virtual_hosts ?? []).flatMap((vh) => vh.routes), filterContext) : undefined;
      if (filters) chains.push(filters);
      const own: HttpListenerSnapshot = { listener: l, listenerIndex: id, router: new Router(l.virtual_hosts ?? []), clusters, telemetry, filters };
      http = {
        // A request starts under the newest generation that still has this listener.
        snapshot: () => runtime.listeners.get(l.name)?.http?.own ?? own,
        own,
        pools,
        retryBudget,
        logger: listenerLogger,
        draining: () => draining || !runtime.listeners.has(l.name),
      };
    }
    listeners.set(l.name, { config: l, id, http, rpc, logger: listenerLogger, tls: l.tls ? terminatorFor(l, secrets) : undefined });
  });
  for (const name of terminators.keys()) if (!config.listeners.some((l) => l.name === name && l.tls)) terminators.delete(name);
  return { generation, config, telemetry, clusters, listeners, chains, secrets };
}

function send(msg: WorkerToMain): void {
  port.postMessage(msg);
}

function closed(c: ProxiedConnection): void {
  open.delete(c);
  loadTable.connectionClosed(init.slot);
  migration.forget(c);
  exitIfDone();
}

/** Draining (or migrating) with nothing left to serve: this worker is done. */
function exitIfDone(): void {
  if ((draining || migration.active) && open.size === 0 && migration.outstanding === 0) exit();
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
  if (entry.config.sni_routes) return passThrough(socket, id, entry);
  if (entry.tls && entry.config.protocol !== 'auto') return terminate(socket, id, entry, undefined, (s, info) => serveProtocol(s, id, entry, info, undefined));
  serveProtocol(socket, id, entry, undefined, undefined);
}

/**
 * The listener's protocol on a connection (a TLS one once terminated). The first bytes tell the
 * protocol where the listener serves several (ALPN first, with TLS); the worker reads them: the
 * acceptor must not, it would make the socket untransferable.
 */
function serveProtocol(socket: net.Socket, id: string, entry: ListenerRuntime, tls: TlsInfo | undefined, first: Buffer | undefined): void {
  const name = entry.config.name;
  const proto = entry.config.protocol;
  if (proto === 'auto' || (proto === 'http' && entry.config.http.codec === 'auto')) {
    if (entry.http && tls?.alpn === 'h2') return startHttp(socket, id, 'HTTP/2', entry.http, name, undefined, tls);
    if (entry.http && tls?.alpn === 'http/1.1') return startHttp(socket, id, 'HTTP/1.1', entry.http, name, undefined, tls);
    const allowed: ProtocolName[] = [];
    if (entry.tls && !tls) allowed.push('tls');
    if (proto === 'auto' && entry.rpc) allowed.push('bolt', 'dubbo');
    if (entry.http) allowed.push('http2', 'http1');
    detectProtocol(socket, allowed, entry.config.http.request_headers_timeout, (detected, bytes) => {
      if (socket.destroyed) return void closedEarly();
      if (detected === 'tls') return terminate(socket, id, entry, bytes, (s, info) => serveProtocol(s, id, entry, info, undefined));
      if (detected === 'bolt') return startRpc(socket, id, boltProtocol, entry.rpc!, name, bytes, tls);
      if (detected === 'dubbo') return startRpc(socket, id, dubboProtocol, entry.rpc!, name, bytes, tls);
      if (detected === 'http2') return startHttp(socket, id, 'HTTP/2', entry.http!, name, bytes, tls);
      // An http listener speaks HTTP/1 to anything else: its codec answers garbage with a 400.
      if (detected === 'http1' || proto === 'http') return startHttp(socket, id, 'HTTP/1.1', entry.http!, name, bytes, tls);
      logger.info({ conn: id, listener: name, detected }, 'protocol not served on this listener; connection closed');
      socket.destroy();
      closedEarly();
    });
    return;
  }
  if (proto === 'http') return startHttp(socket, id, entry.config.http.codec === 'http2' ? 'HTTP/2' : 'HTTP/1.1', entry.http!, name, first, tls);
  if (proto === 'bolt') return startRpc(socket, id, boltProtocol, entry.rpc!, name, first, tls);
  if (proto === 'dubbo') return startRpc(socket, id, dubboProtocol, entry.rpc!, name, first, tls);
  startTcp(socket, id, entry, runtime.clusters.get(entry.config.cluster!)!, first, tls?.sni);
}

/** A connection closed before any pipeline took it. */
function closedEarly(): void {
  loadTable.connectionClosed(init.slot);
  exitIfDone();
}

/** TLS termination; the connection counts as open (drain, abort) while its handshake runs. */
function terminate(socket: net.Socket, id: string, entry: ListenerRuntime, initial: Buffer | undefined, then: (s: tls.TLSSocket, info: TlsInfo) => void): void {
  const handshaking: ProxiedConnection = { drain() {}, abort: () => socket.destroy() };
  open.set(handshaking, entry.config.name);
  entry.tls!.accept(socket, initial, (s, info) => {
    open.delete(handshaking);
    if (s === undefined || info === undefined) return closedEarly();
    then(s, info);
  });
}

/**
 * TLS passthrough (a tcp listener with sni_routes): the ClientHello's server name picks the
 * cluster, and every byte (the hello included) goes to the upstream untouched.
 */
function passThrough(socket: net.Socket, id: string, entry: ListenerRuntime): void {
  const handshaking: ProxiedConnection = { drain() {}, abort: () => socket.destroy() };
  open.set(handshaking, entry.config.name);
  sniffClientHello(socket, entry.config.http.request_headers_timeout, (hello, bytes) => {
    open.delete(handshaking);
    if (socket.destroyed) return closedEarly();
    const name = hello?.serverName;
    const route = name === undefined ? undefined : entry.config.sni_routes!.find((r) => r.server_names.some((p) => serverNameMatches(p, name)));
    const clusterName = route?.cluster ?? entry.config.cluster;
    const cluster = clusterName !== undefined ? runtime.clusters.get(clusterName) : undefined;
    if (!cluster) {
      logger.info({ conn: id, listener: entry.config.name, sni: name ?? null, tls: hello !== undefined }, 'no sni route for the connection; closed');
      socket.destroy();
      return closedEarly();
    }
    startTcp(socket, id, entry, cluster, bytes, name);
  });
}

function startTcp(socket: net.Socket, id: string, entry: ListenerRuntime, cluster: Cluster, initial: Buffer | undefined, sni: string | undefined): void {
  const session = new TcpProxySession(socket, {
    id,
    listener: entry.config,
    listenerIndex: entry.id,
    cluster,
    logger: entry.logger,
    telemetry: runtime.telemetry,
    onClose: closed,
    initial: initial !== undefined && initial.length > 0 ? initial : undefined,
    sni,
  });
  open.set(session, entry.config.name);
  session.start();
}

function startHttp(socket: net.Socket, id: string, protocol: HttpProtocol, ctx: HttpProxyContext, listenerName: string, first?: Buffer, tls?: TlsInfo, resumed?: Http2MigratedState): void {
  const c = new HttpConnectionManager(socket, id, protocol, ctx, closed, tls, resumed);
  open.set(c, listenerName);
  c.start(first !== undefined && first.length > 0 ? first : undefined);
}

function startRpc<F>(socket: net.Socket, id: string, protocol: RpcProtocol<F>, ctx: RpcProxyContext, listenerName: string, first?: Buffer, tls?: TlsInfo): void {
  const c = new RpcConnection(socket, id, protocol, ctx, closed, tls);
  open.set(c, listenerName);
  c.start(first !== undefined && first.length > 0 ? first : undefined);
}

/**
 * reuseport: serves every listener of the config, on the sockets given (`inherited`, from the
 * old process) where there are some, else on a new socket. Exits if one cannot bind.
 */
async function listenAll(inherited: readonly LentListener[]): Promise<BoundListener[]> {
  const bound = new Map<string, BoundListener>();
  for (const { name, server } of inherited) bound.set(name, own.adopt(name, server));
  for (const listener of runtime.config.listeners) {
    if (bound.has(listener.name)) continue;
    try {
      bound.set(listener.name, await own.bind(listener));
    } catch (err) {
      send({ type: 'listen-failed', listener: listener.name, error: (err as Error).message });
      flushSync();
      process.exit(1);
    }
  }
  return [...bound.values()];
}

/** Applies a new generation: new connections and requests use it; open ones finish as they are. */
async function applyConfig(shared: SharedArrayBuffer): Promise<void> {
  const snap = decodeSnapshot(shared);
  const previous = runtime;
  runtime = buildRuntime(snap.generation, snap.config, snap.ids, snap.secrets);
  accessLogs.retain(snap.config);
  for (const chain of previous.chains) chain.close();
  const hostIds = new Set(snap.ids.hosts.flat());
  pools.retain(runtime.clusters, hostIds);
  muxPools.bolt.retain(snap.config, runtime.clusters, hostIds);
  muxPools.dubbo.retain(snap.config, runtime.clusters, hostIds);
  // Connections of removed listeners drain; listeners whose protocol changed drain too.
  for (const [conn, name] of open) {
    const next = runtime.listeners.get(name);
    if (!next || next.config.protocol !== previous.listeners.get(name)?.config.protocol) conn.drain();
  }
  if (init.balance === 'reuseport') {
    // This worker owns its listeners: bind the new (or moved) ones first, then close the old.
    for (const l of snap.config.listeners) {
      const prev = previous.listeners.get(l.name)?.config;
      const moved = prev && (prev.address.host !== l.address.host || prev.address.port !== l.address.port || prev.backlog !== l.backlog);
      if (own.has(l.name) && !moved) continue;
      const old = own.detach(l.name);
      await own.bind(l);
      for (const server of old) server.close();
    }
    for (const name of own.names()) if (!runtime.listeners.has(name)) own.close(name);
  }
  logger.info({ generation: snap.generation }, 'config applied');
}

/**
 * Applies an endpoint update: the changed clusters are swapped in the running cluster manager, so
 * new requests pick among the new hosts while listeners, routers and filter chains stay as they
 * are (an EDS change among thousands of endpoints costs what the changed clusters cost).
 */
function applyHosts(shared: SharedArrayBuffer): void {
  const update = decodeSnapshot<HostsUpdate>(shared);
  const clusters = runtime.config.clusters.slice();
  for (const c of update.clusters) {
    const id = runtime.clusters.get(c.config.name)?.index;
    if (id === undefined || clusters[c.position]?.name !== c.config.name) throw new Error(`hosts update for cluster ${c.config.name}, which generation ${runtime.generation} does not have there`);
    clusters[c.position] = c.config;
    runtime.clusters.replace(new Cluster(c.config, id, c.hostIds, health, hostLoad, runtime.secrets, policy));
  }
  runtime = { ...runtime, generation: update.generation, config: deepFreeze({ ...runtime.config, clusters }) };
  const hostIds = new Set<number>();
  for (const c of runtime.clusters.all()) for (const h of c.hosts) hostIds.add(h.index);
  pools.retain(runtime.clusters, hostIds);
  muxPools.bolt.retain(runtime.config, runtime.clusters, hostIds);
  muxPools.dubbo.retain(runtime.config, runtime.clusters, hostIds);
  logger.debug({ generation: update.generation, clusters: update.clusters.length }, 'hosts applied');
}

function drain(deadlineMs: number): void {
  if (draining) return;
  draining = true;
  own.closeAll();
  pools.drainAll();
  // Multiplexed upstream connections stay: draining RPC connections still send on them. They
  // close with the worker.
  logger.info({ open: open.size, deadline_ms: deadlineMs }, 'draining');
  if (open.size === 0) return exit();
  // (One on its way to the new process is not ours to end: the new process may serve it already.)
  for (const c of open.keys()) if (!migration.holds(c)) c.drain();
  setTimeout(() => {
    logger.warn({ open: open.size }, 'drain deadline passed; closing the remaining connections');
    for (const c of open.keys()) c.abort(new ShuttleError('SHUTTLE_E_DRAIN_DEADLINE', 'internal'));
  }, deadlineMs).unref();
}

/** Old process: every connection moves to the new process, or drains when it can't. */
function migrate(windowMs: number): void {
  if (draining || migration.active) return;
  // No new connection comes here any more (the acceptor diverts them to the new process; in
  // reuseport mode the new process holds copies of these sockets, see own-listeners.ts).
  own.closeAll();
  logger.info({ open: open.size, window_ms: windowMs }, 'connection migration: moving connections to the new process');
  migration.start(open.keys(), windowMs);
  exitIfDone();
}

/** New process: serves a connection moved from the old one, in the state it left it. */
function adopt(id: string, state: MigratedState, sockets: net.Socket[]): void {
  const refuse = (error: string) => {
    for (const s of sockets) s.destroy(); // our copies only: the old process still holds the connection
    loadTable.connectionClosed(init.slot);
    send({ type: 'adopted', id, ok: false, error });
  };
  const entry = runtime.listeners.get(state.listener);
  if (!entry || draining) return refuse(draining ? 'worker draining' : `no listener ${state.listener}`);
  const [socket, upstream] = sockets;
  socket.allowHalfOpen = true;
  const connId = `${init.workerId}-${++connectionSeq}`;
  const unread = 'unread' in state && typeof state.unread === 'string' ? Buffer.from(state.unread, 'base64') : undefined;
  if (state.kind === 'http1' || state.kind === 'http2') {
    if (!entry.http) return refuse(`listener ${state.listener} serves no HTTP now`);
    if (state.kind === 'http2') startHttp(socket, connId, 'HTTP/2', entry.http, entry.config.name, undefined, undefined, state.h2);
    else startHttp(socket, connId, 'HTTP/1.1', entry.http, entry.config.name, unread);
  } else if (state.kind === 'bolt') {
    if (!entry.rpc) return refuse(`listener ${state.listener} serves no RPC now`);
    startRpc(socket, connId, boltProtocol, entry.rpc, entry.config.name, unread);
  } else if (state.kind === 'dubbo') {
    if (!entry.rpc) return refuse(`listener ${state.listener} serves no RPC now`);
    startRpc(socket, connId, dubboProtocol, entry.rpc, entry.config.name, unread);
  } else {
    const cluster = runtime.clusters.get(state.cluster) ?? (entry.config.cluster !== undefined ? runtime.clusters.get(entry.config.cluster) : undefined);
    if (!cluster || upstream === undefined) return refuse(`no cluster ${state.cluster}`);
    const host = cluster.hosts.find((h) => h.address === state.upstream);
    const session = new TcpProxySession(socket, {
      id: connId,
      listener: entry.config,
      listenerIndex: entry.id,
      cluster,
      logger: entry.logger,
      telemetry: runtime.telemetry,
      onClose: closed,
      sni: state.sni,
      adopted: { upstream, host },
    });
    open.set(session, entry.config.name);
    session.start();
  }
  send({ type: 'adopted', id, ok: true });
}

let exiting = false;
function exit(): void {
  if (exiting) return;
  exiting = true;
  logger.info('worker stopped');
  accessLogs.flushSync();
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
        port.postMessage({ type: 'bounce', listener: msg.listener, socket: msg.socket } satisfies WorkerToMain, transferList(msg.socket));
        break;
      }
      serve(isSocket(msg.socket) ? adoptTransferred(msg.socket) : socketOnHandle(msg.socket), msg.listener);
      break;
    case 'exit-now':
      flushSync();
      process.exit(1);
    case 'log-level':
      logger.level = msg.level;
      break;
    case 'reopen-logs':
      accessLogs.reopen();
      break;
    case 'ticket-keys':
      for (const t of terminators.values()) t.setTicketKeys(msg.keys);
      break;
    case 'drain':
      drain(msg.deadlineMs);
      break;
    case 'migrate':
      migrate(msg.windowMs);
      break;
    case 'migrate-commit':
      migration.commit(msg.seq);
      break;
    case 'migrate-rollback':
      migration.rollback(msg.seq);
      break;
    case 'migrate-abort':
      migration.abort();
      break;
    case 'adopt':
      try {
        adopt(msg.id, msg.state, msg.sockets);
      } catch (err) {
        // A bug of ours: the old process keeps the connection (it rolls back on this answer).
        logger.error({ err, id: msg.id }, 'could not take over a moved connection; the old process keeps it');
        for (const s of msg.sockets) s.destroy();
        send({ type: 'adopted', id: msg.id, ok: false, error: (err as Error).message });
      }
      break;
    case 'hosts':
      try {
        applyHosts(msg.update);
        send({ type: 'config-applied', generation: msg.generation });
      } catch (err) {
        logger.error({ err, generation: msg.generation }, 'hosts not applied');
        send({ type: 'config-failed', generation: msg.generation, error: (err as Error).message });
      }
      break;
    case 'lend-listeners': {
      const lent = own.lend();
      port.postMessage({ type: 'lent-listeners', listeners: lent } satisfies WorkerToMain, lent.map((l) => l.server));
      break;
    }
    case 'give-back-listeners':
      // (Draining or moving out meanwhile: no more connections here; our copies close.)
      for (const { name, server } of msg.listeners) {
        if (draining || migration.active) server.close();
        else own.adopt(name, server);
      }
      break;
    case 'listen':
      void listenAll(msg.inherited).then((listeners) => send({ type: 'listening', listeners }));
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

if (init.balance === 'reuseport' && !init.deferListen) {
  send({ type: 'ready', listeners: await listenAll([]) });
} else {
  send({ type: 'ready', listeners: [] });
}
logger.debug({ slot: init.slot }, 'worker ready');
