/**
 * Envoy's Aggregated Discovery Service over one @grpc/grpc-js stream on the main thread, in either
 * variant:
 *
 * State of the world (StreamAggregatedResources):
 *   request:  type_url, resource_names, version_info = last accepted version, response_nonce
 *   response: a whole set of one type (CDS, LDS) or the named ones (EDS, RDS); decoded and handed
 *             to `onResponse`, which accepts it (ACK: the response's version_info and nonce) or
 *             refuses it (NACK: the previous version, the nonce, error_detail { code:
 *             INVALID_ARGUMENT, message })
 * Incremental (DeltaAggregatedResources):
 *   request:  type_url, resource_names_subscribe / _unsubscribe (changes only), response_nonce,
 *             error_detail; on a new stream initial_resource_versions (what is held)
 *   response: resources added or changed (each with its version) and removed_resources; the
 *             handler sees the whole set of the type as it would be, and accepts or refuses it
 *             whole (ACK: the nonce; NACK: the nonce and error_detail)
 * Both:
 *   stream lost: reconnect after a back-off with full jitter (0.5 s doubling to 30 s), asking
 *             again for every subscribed type with the versions accepted before; the running
 *             config is untouched meanwhile.
 */
import { createRequire } from 'node:module';
import type * as grpcTypes from '@grpc/grpc-js';
import { decodeAny, TYPE, TYPE_NAMES, type TypeUrl, xdsProtoIncludeDirs } from './protos.ts';
import type { XdsTls } from './bootstrap.ts';

const require = createRequire(import.meta.url);
const grpc = require('@grpc/grpc-js') as typeof grpcTypes;
const protoLoader = require('@grpc/proto-loader') as typeof import('@grpc/proto-loader');

/** grpc.rpc.Code INVALID_ARGUMENT, as Envoy sends in a NACK. */
const INVALID_ARGUMENT = 3;
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 30_000;
/** A DiscoveryResponse larger than this ends the stream (Istio's CDS for a large mesh fits). */
const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

export interface DecodedResource {
  name: string;
  /** Delta: the resource's own version. */
  version?: string;
  /** The resource, with only its set fields (protos.ts DECODE_OPTIONS). */
  value: Record<string, unknown>;
}

/**
 * What the handler says about a response: null to ACK, or the NACK's error_detail message.
 * `complete`: `resources` is the whole set of the type (delta, and SotW CDS/LDS), else only those
 * the response carried (SotW EDS/RDS: others stay as they were).
 */
/** `receivedAt`: performance.now() when the response arrived (before its resources were decoded). */
export type ResponseHandler = (typeUrl: TypeUrl, version: string, resources: DecodedResource[], complete: boolean, receivedAt: number) => string | null;

export interface AdsEvents {
  connected(): void;
  disconnected(reason: string, retryInMs: number): void;
  acked(typeUrl: TypeUrl, version: string): void;
  nacked(typeUrl: TypeUrl, version: string, nonce: string, message: string): void;
}

interface TypeState {
  names: string[] | '*';
  /** The version last accepted (sent back in every request, ACK or NACK). */
  version: string;
  /** The nonce of the last response on the current stream. */
  nonce: string;
  /** Delta: the resources held, and the names subscribed on the current stream (undefined: none asked yet). */
  resources: Map<string, DecodedResource>;
  streamNames: string[] | '*' | undefined;
}

type AdsStream = grpcTypes.ClientDuplexStream<Record<string, unknown>, Record<string, unknown>>;

let adsClientCtor: grpcTypes.ServiceClientConstructor | undefined;

function adsService(): grpcTypes.ServiceClientConstructor {
  if (adsClientCtor) return adsClientCtor;
  const def = protoLoader.loadSync('envoy/service/discovery/v3/ads.proto', {
    keepCase: true, longs: String, enums: String, defaults: false, includeDirs: xdsProtoIncludeDirs(),
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { envoy: { service: { discovery: { v3: { AggregatedDiscoveryService: grpcTypes.ServiceClientConstructor } } } } };
  adsClientCtor = pkg.envoy.service.discovery.v3.AggregatedDiscoveryService;
  return adsClientCtor;
}

export class AdsClient {
  private readonly target: string;
  private readonly node: Record<string, unknown>;
  private readonly nodeOnce: boolean;
  private readonly delta: boolean;
  private readonly handler: ResponseHandler;
  private readonly events: AdsEvents;
  private readonly types = new Map<TypeUrl, TypeState>();
  /** SotW: the last response's resources of each type as received and decoded (see decodeAgain). */
  private readonly lastDecoded = new Map<TypeUrl, { bytes: Uint8Array; decoded: DecodedResource }[]>();
  private client: grpcTypes.Client | undefined;
  private stream: AdsStream | undefined;
  private nodeSent = false;
  private attempt = 0;
  private openedAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Requests for other types that a response's handler asked for: sent after its ACK or NACK. */
  private deferred: TypeUrl[] | undefined;
  connected = false;

  private readonly tls: XdsTls | undefined;

  constructor(opts: { target: string; node: Record<string, unknown>; setNodeOnFirstMessageOnly: boolean; delta: boolean; tls?: XdsTls; onResponse: ResponseHandler; events: AdsEvents }) {
    this.delta = opts.delta;
    this.tls = opts.tls;
    this.target = opts.target;
    this.node = opts.node;
    this.nodeOnce = opts.setNodeOnFirstMessageOnly;
    this.handler = opts.onResponse;
    this.events = opts.events;
  }

  start(): void {
    const Ctor = adsService();
    const tls = this.tls;
    const credentials = tls
      ? grpc.credentials.createSsl(tls.ca ? Buffer.from(tls.ca) : null, tls.key ? Buffer.from(tls.key) : null, tls.cert ? Buffer.from(tls.cert) : null)
      : grpc.credentials.createInsecure();
    this.client = new Ctor(this.target, credentials, {
      ...(tls?.servername ? { 'grpc.ssl_target_name_override': tls.servername, 'grpc.default_authority': tls.servername } : {}),
      'grpc.max_receive_message_length': MAX_RESPONSE_BYTES,
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
      'grpc.initial_reconnect_backoff_ms': BACKOFF_BASE_MS,
      'grpc.max_reconnect_backoff_ms': BACKOFF_MAX_MS,
    });
    this.open();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.stream?.cancel();
    this.client?.close();
  }

  /** Sets the names wanted of a type ('*': all, for CDS and LDS); asks at once when they changed. */
  subscribe(typeUrl: TypeUrl, names: string[] | '*'): void {
    const state = this.types.get(typeUrl);
    const sorted = names === '*' ? names : [...new Set(names)].sort();
    if (state && JSON.stringify(state.names) === JSON.stringify(sorted)) return;
    if (state) state.names = sorted;
    else this.types.set(typeUrl, { names: sorted, version: '', nonce: '', resources: new Map(), streamNames: undefined });
    if (this.deferred) this.deferred.push(typeUrl);
    else this.send(typeUrl);
  }

  /** The subscription of a type, if any. */
  subscribed(typeUrl: TypeUrl): string[] | '*' | undefined {
    return this.types.get(typeUrl)?.names;
  }

  private open(): void {
    if (this.stopped || !this.client) return;
    const methods = this.client as unknown as { StreamAggregatedResources(): AdsStream; DeltaAggregatedResources(): AdsStream };
    const stream = this.delta ? methods.DeltaAggregatedResources() : methods.StreamAggregatedResources();
    this.stream = stream;
    this.nodeSent = false;
    for (const state of this.types.values()) {
      state.nonce = '';
      state.streamNames = undefined;
    }
    stream.on('data', (res: Record<string, unknown>) => this.onResponse(stream, res));
    stream.on('error', (err: grpcTypes.ServiceError) => this.lost(stream, `${grpc.status[err.code] ?? err.code}: ${err.details || err.message}`));
    stream.on('end', () => this.lost(stream, 'the server ended the stream'));
    this.openedAt = Date.now();
    // On a new stream every type is asked for again with the versions accepted so far.
    for (const typeUrl of this.types.keys()) this.send(typeUrl);
    this.watchReady(stream);
  }

  /**
   * Connected = this stream is open on a READY channel (a delta server with nothing new sends no
   * response, so the first response cannot be the sign).
   */
  private watchReady(stream: AdsStream): void {
    const channel = this.client!.getChannel();
    const check = () => {
      if (stream !== this.stream || this.stopped) return;
      const state = channel.getConnectivityState(true);
      if (state === grpc.connectivityState.READY) return this.markConnected();
      channel.watchConnectivityState(state, Date.now() + 10_000, check);
    };
    check();
  }

  private markConnected(): void {
    if (this.connected) return;
    this.connected = true;
    this.events.connected();
  }

  private lost(stream: AdsStream, reason: string): void {
    if (stream !== this.stream || this.stopped) return;
    this.stream = undefined;
    stream.cancel();
    const wasConnected = this.connected;
    this.connected = false;
    // A stream that lived a while was good: start the back-off afresh.
    if (Date.now() - this.openedAt > 10_000) this.attempt = 0;
    // Full jitter (AWS's "exponential backoff and jitter"): many proxies do not reconnect in step.
    const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.min(this.attempt, 16));
    const delay = Math.max(50, Math.round(Math.random() * cap));
    this.attempt++;
    this.events.disconnected(wasConnected ? reason : `${reason} (not connected)`, delay);
    this.timer = setTimeout(() => this.open(), delay);
  }

  private send(typeUrl: TypeUrl, errorDetail?: string, ack = false): void {
    const state = this.types.get(typeUrl);
    if (!this.stream || !state) return;
    const req: Record<string, unknown> = this.delta ? this.deltaRequest(typeUrl, state, ack) : {
      version_info: state.version,
      resource_names: state.names === '*' ? [] : state.names,
      type_url: typeUrl,
      response_nonce: state.nonce,
    };
    if (!this.nodeOnce || !this.nodeSent) req.node = this.node;
    if (errorDetail !== undefined) req.error_detail = { code: INVALID_ARGUMENT, message: errorDetail };
    this.nodeSent = true;
    this.stream.write(req);
  }

  /**
   * Delta: the first request of a type on a stream subscribes to everything wanted and says what
   * is held; later ones carry only changes of subscription, or answer a response (ACK/NACK).
   */
  private deltaRequest(typeUrl: TypeUrl, state: TypeState, ack: boolean): Record<string, unknown> {
    const req: Record<string, unknown> = { type_url: typeUrl };
    if (ack) {
      req.response_nonce = state.nonce;
      return req;
    }
    const before = state.streamNames;
    if (before === undefined) {
      // A wildcard (CDS, LDS) is an empty first subscription, as Envoy sends it.
      req.resource_names_subscribe = state.names === '*' ? [] : state.names;
      req.initial_resource_versions = Object.fromEntries([...state.resources.values()].map((r) => [r.name, r.version ?? '']));
    } else if (state.names !== '*' && before !== '*') {
      const now = new Set(state.names);
      const had = new Set(before);
      req.resource_names_subscribe = state.names.filter((n) => !had.has(n));
      req.resource_names_unsubscribe = before.filter((n) => !now.has(n));
      // What is no longer wanted is no longer held (Envoy forgets it too).
      for (const n of req.resource_names_unsubscribe as string[]) state.resources.delete(n);
    }
    state.streamNames = state.names;
    return req;
  }

  /**
   * State of the world: a response resends every resource of the type, most of them unchanged
   * (an endpoint change among 10,000 arrives with the 9,999 others). A resource whose bytes are
   * those of the previous response at the same place is not decoded again: the same decoded
   * object goes to the handler, which then need not map it again either.
   */
  private decodeAgain(typeUrl: TypeUrl, resources: unknown): DecodedResource[] {
    const list = Array.isArray(resources) ? (resources as { type_url?: string; value?: Uint8Array }[]) : [];
    const previous = this.lastDecoded.get(typeUrl) ?? [];
    const out = list.map((any, i) => {
      const prev = previous[i];
      if (prev && any.type_url === typeUrl && sameBytes(prev.bytes, any.value)) return prev.decoded;
      return decodeResources(typeUrl, [any], i)[0];
    });
    this.lastDecoded.set(typeUrl, out.map((decoded, i) => ({ bytes: list[i].value!, decoded })));
    return out;
  }

  private onResponse(stream: AdsStream, res: Record<string, unknown>): void {
    if (stream !== this.stream) return;
    const receivedAt = performance.now();
    this.attempt = 0; // the server answers: the next loss starts the back-off afresh
    this.markConnected();
    const typeUrl = String(res.type_url ?? '') as TypeUrl;
    const state = this.types.get(typeUrl);
    const version = String((this.delta ? res.system_version_info : res.version_info) ?? '');
    const nonce = String(res.nonce ?? '');
    if (!state) return; // a type never asked for: nothing to ACK it against
    state.nonce = nonce;
    let error: string | null;
    let held: Map<string, DecodedResource> | undefined;
    this.deferred = [];
    try {
      if (this.delta) {
        held = applyDelta(typeUrl, state.resources, res);
        error = this.handler(typeUrl, version, [...held.values()], true, receivedAt);
      } else {
        error = this.handler(typeUrl, version, this.decodeAgain(typeUrl, res.resources), typeUrl === TYPE.cluster || typeUrl === TYPE.listener, receivedAt);
      }
    } catch (err) {
      error = (err as Error).message;
    }
    const followUps = this.deferred;
    this.deferred = undefined;
    if (error === null) {
      state.version = version;
      if (held) state.resources = held;
      this.send(typeUrl, undefined, true);
      this.events.acked(typeUrl, version);
    } else {
      const message = error.slice(0, 4096);
      this.send(typeUrl, message, true);
      this.events.nacked(typeUrl, version, nonce, message);
    }
    for (const t of new Set(followUps)) this.send(t);
  }
}

/** Two resources' encoded bytes are the same. */
function sameBytes(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  return a !== undefined && b !== undefined && a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(b);
}

/** Each Any of a response, decoded; a resource of the wrong type or that does not decode throws with its index. */
function decodeResources(typeUrl: TypeUrl, resources: unknown, first = 0): DecodedResource[] {
  const list = Array.isArray(resources) ? resources : [];
  return list.map((any: { type_url?: string; value?: Uint8Array }, i) => {
    const at = `${TYPE_NAMES[typeUrl]} resources[${first + i}]`;
    if (any.type_url !== typeUrl) throw new Error(`${at}: type_url ${any.type_url} in a response for ${typeUrl}`);
    let value: Record<string, unknown>;
    try {
      value = decodeAny(any);
    } catch (err) {
      throw new Error(`${at}: cannot decode: ${(err as Error).message}`);
    }
    const name = typeof value.name === 'string' ? value.name : typeof value.cluster_name === 'string' ? value.cluster_name : '';
    if (!name) throw new Error(`${at}: the resource has no name`);
    return { name, value };
  });
}

/** Delta: the resources held after a response's additions, changes and removals (not yet committed). */
function applyDelta(typeUrl: TypeUrl, held: Map<string, DecodedResource>, res: Record<string, unknown>): Map<string, DecodedResource> {
  const next = new Map(held);
  const list = Array.isArray(res.resources) ? (res.resources as { name?: string; version?: string; resource?: { type_url?: string; value?: Uint8Array } }[]) : [];
  list.forEach((r, i) => {
    const at = `${TYPE_NAMES[typeUrl]} resources[${i}]`;
    if (!r.resource) throw new Error(`${at}: no resource (named or aliased resources are not supported)`);
    const [decoded] = decodeResources(typeUrl, [r.resource], i);
    if (r.name && r.name !== decoded.name) throw new Error(`${at}: named "${r.name}" but the resource is "${decoded.name}"`);
    next.set(decoded.name, { ...decoded, version: String(r.version ?? '') });
  });
  for (const name of Array.isArray(res.removed_resources) ? (res.removed_resources as string[]) : []) next.delete(String(name));
  return next;
}
