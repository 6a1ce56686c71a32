/**
 * A test xDS control plane: Envoy's Aggregated Discovery Service (v3, state of the world) on
 * @grpc/grpc-js, with Envoy's protos loaded by @grpc/proto-loader from @grpc/grpc-js-xds's deps
 * (an independent path from Shuttle's own decoding). It follows the protocol as go-control-plane
 * does:
 *
 *   - each response carries the type's current version and a fresh nonce;
 *   - a request whose response_nonce is not the last one sent on that stream for that type is
 *     stale and ignored (nothing is sent for it);
 *   - a request with the last nonce is an ACK (no error_detail: version_info is the new version)
 *     or a NACK (error_detail; version_info stays the last accepted one), recorded either way;
 *   - a first request, or one whose resource_names changed, is answered with the current set
 *     (CDS and LDS: every resource; EDS and RDS: those named);
 *   - set() makes a new version and pushes it to every stream subscribed to that type.
 *
 * Incremental (delta) streams are served too, as go-control-plane serves them: the first request
 * of a type subscribes (an empty list on CDS/LDS: every resource) and says, in
 * initial_resource_versions, what the client holds; each response carries the resources whose
 * version differs from what was last sent to that stream, and the names removed since; a request
 * with a response_nonce is the ACK or NACK of that response. A resource's version is a hash of it.
 *
 * Resources are given as objects with "@type" (protobufjs encodes them into Any).
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);
const grpc = require('@grpc/grpc-js') as typeof import('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader') as typeof import('@grpc/proto-loader');

export const TYPE = {
  cds: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  eds: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  lds: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  rds: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
  sds: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret',
} as const;
export type XdsType = keyof typeof TYPE;
const TYPE_OF_URL = Object.fromEntries(Object.entries(TYPE).map(([k, v]) => [v, k])) as Record<string, XdsType>;

const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const TCP_PROXY = 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy';
const ROUTER = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';

const base = dirname(require.resolve('@grpc/grpc-js-xds/package.json'));
const definition = protoLoader.loadSync([
  'envoy/service/discovery/v3/ads.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
  'envoy/extensions/network/dns_resolver/cares/v3/cares_dns_resolver.proto',
  'envoy/extensions/filters/http/fault/v3/fault.proto',
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  'envoy/extensions/transport_sockets/tls/v3/secret.proto',
  'envoy/extensions/filters/http/rbac/v3/rbac.proto',
  'envoy/extensions/filters/http/jwt_authn/v3/config.proto',
  'envoy/extensions/filters/http/cors/v3/cors.proto',
  'envoy/extensions/filters/http/local_ratelimit/v3/local_rate_limit.proto',
  'envoy/extensions/filters/http/header_mutation/v3/header_mutation.proto',
  'envoy/extensions/filters/http/compressor/v3/compressor.proto',
  'envoy/extensions/compression/gzip/compressor/v3/gzip.proto',
], {
  keepCase: true, longs: String, enums: String, defaults: false, json: true,
  includeDirs: ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => join(base, 'deps', d)),
});
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const ADS = (grpc.loadPackageDefinition(definition) as any).envoy.service.discovery.v3.AggregatedDiscoveryService;

export interface RecordedRequest {
  stream: number;
  delta: boolean;
  type: XdsType;
  /** SotW: the version the client holds; delta: the system version of the response it answers (ACK or NACK), else ''. */
  version_info: string;
  /** Delta only. */
  unsubscribe?: string[];
  initial_resource_versions?: Record<string, string>;
  response_nonce: string;
  resource_names: string[];
  error_detail?: { code?: number; message?: string };
  node?: { id?: string };
  time: number;
}

export interface RecordedResponse {
  stream: number;
  type: XdsType;
  version: string;
  nonce: string;
  names: string[];
}

interface StreamTypeState {
  names: string[];
  wildcard: boolean;
  lastNonce: string;
  /** Delta: the version of each resource last sent (or held at the start), by name. */
  sent: Map<string, string>;
}

type Resource = Record<string, unknown> & { name?: string; cluster_name?: string };

export class XdsControlPlane {
  private server: import('@grpc/grpc-js').Server | undefined;
  port = 0;
  private readonly resources: Record<XdsType, Map<string, Resource>> = { cds: new Map(), eds: new Map(), lds: new Map(), rds: new Map(), sds: new Map() };
  private readonly versions: Record<XdsType, number> = { cds: 0, eds: 0, lds: 0, rds: 0, sds: 0 };
  private readonly streams = new Map<number, { call: import('@grpc/grpc-js').ServerDuplexStream<any, any>; types: Map<XdsType, StreamTypeState>; delta: boolean }>();
  private nextStream = 1;
  private nonce = 0;
  readonly requests: RecordedRequest[] = [];
  readonly responses: RecordedResponse[] = [];

  /** Replaces the whole set of a type (a new version) and pushes it to subscribed streams. */
  set(type: XdsType, resources: Resource[]): string {
    this.resources[type] = new Map(resources.map((r) => [nameOf(r), r]));
    this.versions[type]++;
    for (const [id, s] of this.streams) {
      const st = s.types.get(type);
      if (st) this.respond(id, type);
    }
    return this.version(type);
  }

  version(type: XdsType): string {
    return `${type}-${this.versions[type]}`;
  }

  /** ACKs and NACKs of a type (requests that answered the last nonce sent). */
  replies(type: XdsType): RecordedRequest[] {
    const sent = new Set(this.responses.filter((r) => r.type === type).map((r) => `${r.stream}/${r.nonce}`));
    return this.requests.filter((r) => r.type === type && r.response_nonce !== '' && sent.has(`${r.stream}/${r.response_nonce}`));
  }

  nacks(type?: XdsType): RecordedRequest[] {
    return this.requests.filter((r) => (type === undefined || r.type === type) && r.error_detail);
  }

  get connectedStreams(): number {
    return this.streams.size;
  }

  /** `tls`: serve over TLS (PEM text); `requireClientCert`: mTLS, clients need a certificate from `ca`. */
  async start(port = this.port, tls?: { ca: string; cert: string; key: string; requireClientCert: boolean }): Promise<number> {
    const server = new grpc.Server();
    server.addService(ADS.service, {
      StreamAggregatedResources: (call: import('@grpc/grpc-js').ServerDuplexStream<any, any>) => this.onStream(call),
      DeltaAggregatedResources: (call: import('@grpc/grpc-js').ServerDuplexStream<any, any>) => this.onStream(call, true),
    });
    this.port = await new Promise<number>((resolve, reject) => server.bindAsync(`127.0.0.1:${port}`, tls ? grpc.ServerCredentials.createSsl(Buffer.from(tls.ca), [{ cert_chain: Buffer.from(tls.cert), private_key: Buffer.from(tls.key) }], tls.requireClientCert) : grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
    this.server = server;
    return this.port;
  }

  /** Kills the server: every stream ends at once (as a crashed control plane's would). */
  kill(): void {
    this.server?.forceShutdown();
    this.server = undefined;
    this.streams.clear();
  }

  private onStream(call: import('@grpc/grpc-js').ServerDuplexStream<any, any>, delta = false): void {
    const id = this.nextStream++;
    const stream = { call, types: new Map<XdsType, StreamTypeState>(), delta };
    this.streams.set(id, stream);
    call.on('data', (req: Record<string, any>) => (delta ? this.onDeltaRequest(id, req) : this.onRequest(id, req)));
    call.on('error', () => this.streams.delete(id));
    call.on('end', () => {
      this.streams.delete(id);
      call.end();
    });
    call.on('cancelled', () => this.streams.delete(id));
  }

  private onRequest(id: number, req: Record<string, any>): void {
    const stream = this.streams.get(id);
    const type = TYPE_OF_URL[req.type_url];
    if (!stream || !type) return;
    const names = [...(req.resource_names ?? [])].sort();
    this.requests.push({ stream: id, delta: false, type, version_info: req.version_info ?? '', response_nonce: req.response_nonce ?? '', resource_names: names, error_detail: req.error_detail, node: req.node, time: Date.now() });
    const st = stream.types.get(type);
    const nonce = req.response_nonce ?? '';
    if (st && nonce !== '' && nonce !== st.lastNonce) return; // stale: an answer to a response superseded since
    const changed = !st || JSON.stringify(st.names) !== JSON.stringify(names);
    const state = st ?? { names, wildcard: names.length === 0 && (type === 'cds' || type === 'lds'), lastNonce: '', sent: new Map() };
    state.names = names;
    stream.types.set(type, state);
    // A first request, or one for other names, is answered; an ACK or NACK of the latest is not.
    if (changed || nonce === '') this.respond(id, type);
  }

  private onDeltaRequest(id: number, req: Record<string, any>): void {
    const stream = this.streams.get(id);
    const type = TYPE_OF_URL[req.type_url];
    if (!stream || !type) return;
    const subscribe: string[] = [...(req.resource_names_subscribe ?? [])].sort();
    const unsubscribe: string[] = [...(req.resource_names_unsubscribe ?? [])].sort();
    const nonce = req.response_nonce ?? '';
    const answered = nonce ? this.responses.find((r) => r.stream === id && r.nonce === nonce) : undefined;
    this.requests.push({
      stream: id, delta: true, type, version_info: answered?.version ?? '', response_nonce: nonce, resource_names: subscribe, unsubscribe,
      initial_resource_versions: req.initial_resource_versions, error_detail: req.error_detail, node: req.node, time: Date.now(),
    });
    let st = stream.types.get(type);
    if (!st) {
      const wildcard = (subscribe.length === 0 || subscribe.includes('*')) && (type === 'cds' || type === 'lds');
      st = { names: subscribe.filter((n) => n !== '*'), wildcard, lastNonce: '', sent: new Map(Object.entries(req.initial_resource_versions ?? {})) };
      stream.types.set(type, st);
      return this.respond(id, type);
    }
    if (subscribe.length === 0 && unsubscribe.length === 0) return; // an ACK or NACK: nothing new to send
    st.names = [...new Set([...st.names, ...subscribe])].filter((n) => !unsubscribe.includes(n)).sort();
    for (const n of unsubscribe) st.sent.delete(n);
    // Newly subscribed names are sent even if the client had them from an earlier subscription.
    for (const n of subscribe) st.sent.delete(n);
    this.respond(id, type);
  }

  private respond(id: number, type: XdsType): void {
    const stream = this.streams.get(id);
    const st = stream?.types.get(type);
    if (!stream || !st) return;
    if (stream.delta) return this.respondDelta(id, type);
    const all = [...this.resources[type].values()];
    const chosen = st.wildcard ? all : all.filter((r) => st.names.includes(nameOf(r)));
    if (this.versions[type] === 0) return; // nothing set yet: the client waits
    const nonce = `n${++this.nonce}`;
    st.lastNonce = nonce;
    const version = this.version(type);
    this.responses.push({ stream: id, type, version, nonce, names: chosen.map(nameOf) });
    stream.call.write({ version_info: version, type_url: TYPE[type], nonce, resources: chosen.map((r) => ({ '@type': TYPE[type], ...r })) });
  }

  /** Delta: what changed for this stream since the last response (nothing changed: nothing sent). */
  private respondDelta(id: number, type: XdsType): void {
    const stream = this.streams.get(id)!;
    const st = stream.types.get(type)!;
    if (this.versions[type] === 0) return;
    const wanted = [...this.resources[type].values()].filter((r) => st.wildcard || st.names.includes(nameOf(r)));
    const changed = wanted.filter((r) => st.sent.get(nameOf(r)) !== versionOf(r));
    const wantedNames = new Set(wanted.map(nameOf));
    const removed = [...st.sent.keys()].filter((n) => !wantedNames.has(n) && (st.wildcard || st.names.includes(n)));
    if (changed.length === 0 && removed.length === 0) return;
    for (const r of changed) st.sent.set(nameOf(r), versionOf(r));
    for (const n of removed) st.sent.delete(n);
    const nonce = `n${++this.nonce}`;
    st.lastNonce = nonce;
    const version = this.version(type);
    this.responses.push({ stream: id, type, version, nonce, names: changed.map(nameOf) });
    stream.call.write({
      system_version_info: version, type_url: TYPE[type], nonce, removed_resources: removed,
      resources: changed.map((r) => ({ name: nameOf(r), version: versionOf(r), resource: { '@type': TYPE[type], ...r } })),
    });
  }

  /** Whether the client ACKed (or NACKed: `nacked`) a response of this type and version. */
  answered(type: XdsType, version: string, nacked = false): boolean {
    return this.responses.some((res) => res.type === type && res.version === version
      && this.requests.some((r) => r.stream === res.stream && r.type === type && r.response_nonce === res.nonce && !!r.error_detail === nacked));
  }
}

function versionOf(r: Resource): string {
  return createHash('sha256').update(JSON.stringify(r)).digest('hex').slice(0, 12);
}

function nameOf(r: Resource): string {
  return (r.name ?? r.cluster_name) as string;
}

// ---- resource builders (Envoy v3, proto field names) --------------------------------------------

export function edsCluster(name: string, extra: Record<string, unknown> = {}): Resource {
  return { name, type: 'EDS', eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' } }, connect_timeout: { seconds: 2 }, lb_policy: 'ROUND_ROBIN', ...extra };
}

export function loadAssignment(cluster: string, endpoints: { port: number; weight?: number; health?: string }[]): Resource {
  return {
    cluster_name: cluster,
    endpoints: [{
      locality: { zone: 'test' },
      load_balancing_weight: { value: 1 },
      lb_endpoints: endpoints.map((e) => ({
        endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: e.port } } },
        ...(e.weight ? { load_balancing_weight: { value: e.weight } } : {}),
        ...(e.health ? { health_status: e.health } : {}),
      })),
    }],
  };
}

export const FAULT = 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault';

/** An HTTP listener whose routes come from RDS; `fault`: with Envoy's fault filter before the router. */
export function httpListener(name: string, port: number, routeConfig: string, opts: { fault?: boolean } = {}): Resource {
  return {
    name,
    address: { socket_address: { address: '127.0.0.1', port_value: port } },
    filter_chains: [{
      filters: [{
        name: 'envoy.filters.network.http_connection_manager',
        typed_config: {
          '@type': HCM,
          stat_prefix: name,
          codec_type: 'AUTO',
          rds: { route_config_name: routeConfig, config_source: { ads: {}, resource_api_version: 'V3' } },
          http_filters: [
            ...(opts.fault ? [{ name: 'envoy.filters.http.fault', typed_config: { '@type': FAULT } }] : []),
            { name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER } },
          ],
        },
      }],
    }],
  };
}

export function tcpListener(name: string, port: number, cluster: string): Resource {
  return {
    name,
    address: { socket_address: { address: '127.0.0.1', port_value: port } },
    filter_chains: [{ filters: [{ name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': TCP_PROXY, stat_prefix: name, cluster } }] }],
  };
}

/** A client-side (gRPC) listener: an api_listener carrying the HTTP connection manager. */
export function apiListener(name: string, routeConfig: string): Resource {
  return {
    name,
    api_listener: {
      api_listener: {
        '@type': HCM,
        rds: { route_config_name: routeConfig, config_source: { ads: {}, resource_api_version: 'V3' } },
        http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER } }],
      },
    },
  };
}

export function routeConfig(name: string, routes: Record<string, unknown>[], domains = ['*']): Resource {
  return { name, virtual_hosts: [{ name: `${name}-vh`, domains, routes }] };
}

/** The bootstrap Shuttle starts from: a node, ADS over gRPC to this control plane, an admin on port 0. */
export function bootstrapFor(cp: XdsControlPlane, nodeId = 'shuttle-test', variant: 'sotw' | 'delta' = 'sotw'): Record<string, unknown> {
  return {
    node: { id: nodeId, cluster: 'test', metadata: { ISTIO_VERSION: '1.24.0', LABELS: { app: 'shuttle' } } },
    dynamic_resources: {
      ads_config: { api_type: variant === 'delta' ? 'DELTA_GRPC' : 'GRPC', transport_api_version: 'V3', grpc_services: [{ envoy_grpc: { cluster_name: 'xds-grpc' } }], set_node_on_first_message_only: true },
      cds_config: { ads: {}, resource_api_version: 'V3' },
      lds_config: { ads: {}, resource_api_version: 'V3' },
    },
    static_resources: {
      clusters: [{
        name: 'xds-grpc',
        type: 'STATIC',
        connect_timeout: '1s',
        load_assignment: { cluster_name: 'xds-grpc', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: cp.port } } } }] }] },
      }],
    },
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } },
  };
}
