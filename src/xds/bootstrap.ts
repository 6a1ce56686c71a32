/**
 * `shuttle start --bootstrap FILE`: Envoy's v3 Bootstrap (YAML or JSON, proto3 JSON field names
 * in snake_case or camelCase), the subset Shuttle honours:
 *
 *   node                      id, cluster, locality, metadata (sent to the control plane as is)
 *   dynamic_resources         ads_config (GRPC or DELTA_GRPC, V3, envoy_grpc cluster, set_node_on_first_message_only),
 *                             cds_config / lds_config: { ads: {} }
 *   static_resources.clusters mapped as xDS clusters are (mapping.ts); one of them is the xDS server's
 *   static_resources.listeners mapped as LDS listeners are, with an inline route_config
 *   admin.address             the admin API
 *
 * Everything else is reported, each field by its path, as a warning (it has no effect) or, where
 * Shuttle could not work as the file means, as an error.
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import YAML from 'yaml';
import { Fields, XdsFieldError, type Message } from './fields.ts';
import { mapCluster, mapListener, socketAddress } from './mapping.ts';

export interface BootstrapProblem {
  path: string;
  message: string;
}

const DEFAULT_INITIAL_FETCH_TIMEOUT_MS = 15_000;
const TLS_CONTEXT = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';

export interface XdsTls {
  /** CA bundle that verifies the server (absent: the system's roots). */
  ca?: string;
  /** Client certificate and key (mTLS). */
  cert?: string;
  key?: string;
  /** The name the server's certificate must carry (and SNI). */
  servername?: string;
}

/** Where each TLS file is named in the bootstrap, before it is read. */
interface XdsTlsFiles {
  ca?: { path: string; at: string };
  cert?: { path: string; at: string };
  key?: { path: string; at: string };
  servername?: string;
}

export class BootstrapError extends Error {
  readonly problems: BootstrapProblem[];
  constructor(file: string, problems: BootstrapProblem[]) {
    super(`invalid bootstrap ${file}:\n${problems.map((p) => `${file}: ${p.path ? `${p.path}: ` : ''}${p.message}`).join('\n')}`);
    this.problems = problems;
  }
}

export interface Bootstrap {
  /** envoy.config.core.v3.Node, as sent in DiscoveryRequests (metadata as a Struct). */
  node: Message;
  nodeId: string;
  ads: {
    /** The xDS server's cluster, and the address gRPC dials. */
    cluster: string;
    target: string;
    setNodeOnFirstMessageOnly: boolean;
    /** TLS to the xDS server (the cluster's UpstreamTlsContext): PEM text read from its files. */
    tls?: XdsTls;
    /** DELTA_GRPC: incremental xDS; GRPC: state of the world. */
    delta: boolean;
    /**
     * How long a cluster waits for its endpoints (then it serves with none) and Shuttle for its
     * first complete config (then /ready answers 200 anyway): cds_config/lds_config
     * initial_fetch_timeout, Envoy's 15 s by default; 0 waits for ever.
     */
    initialFetchTimeoutMs: number;
    cds: boolean;
    lds: boolean;
  };
  /** Static clusters other than the xDS server's, as Shuttle config. */
  clusters: Record<string, unknown>[];
  /** Static listeners (inline route_config only), as Shuttle config; merged with LDS's. */
  listeners: Record<string, unknown>[];
  admin?: string;
  /** Fields present but without effect, by path. */
  warnings: BootstrapProblem[];
}

/** Keys whose values are user data (metadata maps), not proto field names: left as written. */
const OPAQUE = new Set(['metadata', 'filter_metadata', 'typed_filter_metadata', 'fields']);

/** camelCase proto3 JSON names → snake_case proto field names, outside user data. */
export function snakeKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(snakeKeys);
  if (!value || typeof value !== 'object') return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => {
    const key = k === '@type' ? k : k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    return [key, OPAQUE.has(key) ? v : snakeKeys(v)];
  }));
}

/** A JSON value → google.protobuf.Value (how Node.metadata travels). */
function toValue(v: unknown): Message {
  if (v === null || v === undefined) return { null_value: 'NULL_VALUE' };
  if (typeof v === 'number') return { number_value: v };
  if (typeof v === 'string') return { string_value: v };
  if (typeof v === 'boolean') return { bool_value: v };
  if (Array.isArray(v)) return { list_value: { values: v.map(toValue) } };
  return { struct_value: toStruct(v as Message) };
}

export function toStruct(m: Message): Message {
  return { fields: Object.fromEntries(Object.entries(m).map(([k, v]) => [k, toValue(v)])) };
}

export async function loadBootstrap(file: string): Promise<Bootstrap> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new BootstrapError(file, [{ path: '', message: `cannot read: ${(err as Error).message}` }]);
  }
  let raw: unknown;
  try {
    raw = file.endsWith('.json') ? JSON.parse(text) : YAML.parse(text);
  } catch (err) {
    throw new BootstrapError(file, [{ path: '', message: `cannot parse: ${(err as Error).message.split('\n')[0]}` }]);
  }
  let parsed: Bootstrap & { tlsFiles?: XdsTlsFiles };
  try {
    parsed = parseBootstrap(snakeKeys(raw));
  } catch (err) {
    if (err instanceof XdsFieldError) throw new BootstrapError(file, [{ path: err.path, message: err.reason }]);
    throw err;
  }
  const files = parsed.tlsFiles;
  if (files) {
    const tls: XdsTls = { servername: files.servername };
    const problems: BootstrapProblem[] = [];
    for (const key of ['ca', 'cert', 'key'] as const) {
      const f = files[key];
      if (!f) continue;
      try {
        tls[key] = await readFile(resolve(dirname(file), f.path), 'utf8');
      } catch (err) {
        problems.push({ path: f.at, message: `cannot read ${f.path}: ${(err as Error).message}` });
      }
    }
    if (problems.length > 0) throw new BootstrapError(file, problems);
    parsed.ads.tls = tls;
    delete parsed.tlsFiles;
  }
  return parsed;
}

/** Fields left unread become warnings (they have no effect), not errors. */
function warnRest(f: Fields, warnings: BootstrapProblem[], why = 'not honoured by Shuttle: no effect'): void {
  for (const path of f.unread()) warnings.push({ path, message: why });
}

export function parseBootstrap(raw: unknown): Bootstrap {
  const warnings: BootstrapProblem[] = [];
  const root = new Fields(raw ?? {}, '');

  // node
  const nodeIn = root.message('node') ?? root.fail('node', 'required (the control plane knows this proxy by node.id)');
  const nodeId = nodeIn.requiredStr('id');
  const node: Message = { id: nodeId, user_agent_name: 'shuttle' };
  const cluster = nodeIn.str('cluster');
  if (cluster) node.cluster = cluster;
  const locality = nodeIn.raw('locality');
  if (locality && typeof locality === 'object') node.locality = locality;
  const metadata = nodeIn.raw('metadata');
  if (metadata && typeof metadata === 'object' && !Array.isArray(metadata)) node.metadata = toStruct(metadata as Message);
  warnRest(nodeIn, warnings);

  // dynamic_resources
  const dyn = root.message('dynamic_resources') ?? root.fail('dynamic_resources', 'required: Shuttle reads its listeners and clusters from ADS');
  const adsConfig = dyn.message('ads_config') ?? dyn.fail('ads_config', 'required (Shuttle speaks ADS only)');
  const apiType = adsConfig.str('api_type') ?? 'GRPC';
  if (!['GRPC', 'AGGREGATED_GRPC', 'DELTA_GRPC', 'AGGREGATED_DELTA_GRPC'].includes(apiType)) adsConfig.fail('api_type', `${apiType} is not supported (GRPC and DELTA_GRPC are)`);
  const version = adsConfig.str('transport_api_version');
  if (version !== undefined && version !== 'V3') adsConfig.fail('transport_api_version', 'only V3 is supported');
  const services = adsConfig.list('grpc_services');
  if (services.length !== 1) adsConfig.fail('grpc_services', 'exactly one gRPC service (envoy_grpc) is required');
  const envoyGrpc = services[0].message('envoy_grpc') ?? services[0].fail('envoy_grpc', 'only envoy_grpc services are supported (google_grpc is not)');
  const xdsCluster = envoyGrpc.requiredStr('cluster_name');
  warnRest(envoyGrpc, warnings);
  warnRest(services[0], warnings);
  const setNodeOnce = adsConfig.bool('set_node_on_first_message_only') ?? false;
  warnRest(adsConfig, warnings);
  let initialFetchTimeoutMs = DEFAULT_INITIAL_FETCH_TIMEOUT_MS;
  const adsOnly = (key: string): boolean => {
    const source = dyn.message(key);
    if (!source) return false;
    if (!source.has('ads')) source.fail('ads', 'only { ads: {} } is supported');
    source.raw('ads');
    const v = source.str('resource_api_version');
    if (v !== undefined && v !== 'V3') source.fail('resource_api_version', 'only V3 is supported');
    const timeout = source.durationMs('initial_fetch_timeout');
    if (timeout !== undefined) initialFetchTimeoutMs = timeout; // 0: wait for ever, as Envoy
    warnRest(source, warnings);
    return true;
  };
  const cds = adsOnly('cds_config');
  const lds = adsOnly('lds_config');
  if (!cds && !lds) dyn.fail('cds_config', 'cds_config and/or lds_config ({ ads: {} }) is required');
  warnRest(dyn, warnings);

  // static_resources
  const clusters: Record<string, unknown>[] = [];
  const listeners: Record<string, unknown>[] = [];
  let target: string | undefined;
  let tlsFiles: XdsTlsFiles | undefined;
  const statics = root.message('static_resources');
  if (statics) {
    for (const c of statics.list('clusters')) {
      const name = c.str('name');
      if (name === xdsCluster) {
        ({ target, tls: tlsFiles } = xdsTarget(c, warnings));
        continue;
      }
      const mapped = mapCluster(resourceCopy(c), c.path);
      clusters.push({ ...mapped.config, hosts: mapped.hosts ?? c.fail('type', 'static clusters need their endpoints in load_assignment (EDS is for dynamic clusters)') });
    }
    for (const l of statics.list('listeners')) {
      const mapped = mapListener(resourceCopy(l), l.path);
      if (mapped.rdsName) throw new XdsFieldError(`${l.path}.filter_chains[0].filters[0].typed_config.rds`, 'a static listener needs an inline route_config');
      listeners.push(mapped.config);
    }
    warnRest(statics, warnings);
  }
  if (!target) throw new XdsFieldError('static_resources.clusters', `no static cluster named "${xdsCluster}" (the ADS server's cluster)`);

  // admin
  let admin: string | undefined;
  const adminIn = root.message('admin');
  if (adminIn) {
    const address = adminIn.message('address');
    if (address) admin = socketAddress(address);
    warnRest(adminIn, warnings);
  }
  warnRest(root, warnings);
  return { node, nodeId, ads: { cluster: xdsCluster, target, setNodeOnFirstMessageOnly: setNodeOnce, delta: apiType.includes('DELTA'), initialFetchTimeoutMs, cds, lds }, clusters, listeners, admin, warnings, ...(tlsFiles ? { tlsFiles } : {}) } as Bootstrap;
}

function resourceCopy(f: Fields): Message {
  const out: Message = {};
  for (const k of f.keys()) out[k] = f.raw(k);
  return out;
}

/** The xDS server's address: the first endpoint of its cluster (STATIC, or a DNS name gRPC resolves). */
function xdsTarget(c: Fields, warnings: BootstrapProblem[]): { target: string; tls?: XdsTlsFiles } {
  const type = c.str('type') ?? 'STATIC';
  if (!['STATIC', 'STRICT_DNS', 'LOGICAL_DNS'].includes(type)) c.fail('type', `the xDS server's cluster must be STATIC, STRICT_DNS or LOGICAL_DNS, not ${type}`);
  const la = c.requiredMessage('load_assignment');
  const endpoints = la.list('endpoints');
  const lbs = endpoints[0]?.list('lb_endpoints') ?? [];
  const endpoint = lbs[0]?.message('endpoint') ?? la.fail('endpoints', 'the xDS server cluster needs an endpoint');
  const address = socketAddress(endpoint.requiredMessage('address'));
  if (endpoints.length > 1 || lbs.length > 1) warnings.push({ path: la.at('endpoints'), message: `only the first endpoint (${address}) is used for the xDS server` });
  const socket = c.message('transport_socket');
  const tls = socket ? upstreamTls(socket, warnings) : undefined;
  for (const k of c.keys()) if (!['name', 'type', 'load_assignment', 'transport_socket'].includes(k)) warnings.push({ path: c.at(k), message: 'not honoured for the xDS server\'s cluster: no effect' });
  return { target: address, tls };
}

/**
 * The xDS server cluster's transport_socket: an UpstreamTlsContext with files (SDS secrets are not
 * supported yet): client certificate and key (mTLS), trusted CA, SNI (also the name verified).
 */
function upstreamTls(socket: Fields, warnings: BootstrapProblem[]): XdsTlsFiles {
  socket.skip('name');
  const ctx = socket.requiredMessage('typed_config');
  if (ctx.str('@type') !== TLS_CONTEXT) ctx.fail('@type', `expected ${TLS_CONTEXT}`);
  socket.done();
  const out: XdsTlsFiles = {};
  const sni = ctx.str('sni');
  if (sni) out.servername = sni;
  const common = ctx.message('common_tls_context');
  const file = (ds: Fields | undefined, at: string) => {
    if (!ds) return undefined;
    const path = ds.str('filename') ?? ds.fail('filename', 'only files are supported (no inline_string, environment_variable or SDS)');
    ds.done();
    return { path, at };
  };
  if (common) {
    const certs = common.list('tls_certificates');
    if (certs.length > 1) common.fail('tls_certificates', 'one client certificate at most');
    if (certs[0]) {
      out.cert = file(certs[0].requiredMessage('certificate_chain'), `${certs[0].at('certificate_chain')}.filename`);
      out.key = file(certs[0].requiredMessage('private_key'), `${certs[0].at('private_key')}.filename`);
      certs[0].done();
    }
    const validation = common.message('validation_context');
    if (validation) {
      out.ca = file(validation.message('trusted_ca'), `${validation.at('trusted_ca')}.filename`);
      validation.done();
    }
    if (common.list('tls_certificate_sds_secret_configs').length > 0 || common.has('validation_context_sds_secret_config') || common.has('combined_validation_context')) {
      common.fail('tls_certificate_sds_secret_configs', 'SDS secrets for the xDS server are not supported yet (give files)');
    }
    common.skip('alpn_protocols', 'tls_params');
    common.done();
  }
  if (!out.ca) warnings.push({ path: ctx.at('common_tls_context.validation_context.trusted_ca'), message: 'no trusted CA: the xDS server is verified against the system\'s roots (Envoy would not verify it at all)' });
  ctx.done();
  return out;
}
