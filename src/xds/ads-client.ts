/**
 * Envoy's Aggregated Discovery Service, state of the world, over one @grpc/grpc-js stream on the
 * main thread.
 *
 *   request:  type_url, resource_names, version_info = last accepted version, response_nonce
 *   response: a whole set of one type; decoded and handed to `onResponse`, which accepts it
 *             (ACK: the response's version_info and nonce) or refuses it (NACK: the previous
 *             version, the nonce, error_detail { code: INVALID_ARGUMENT, message })
 *   stream lost: reconnect after a back-off with full jitter (0.5 s doubling to 30 s), asking
 *             again for every subscribed type with the versions accepted before; the running
 *             config is untouched meanwhile.
 */
import { createRequire } from 'node:module';
import type * as grpcTypes from '@grpc/grpc-js';
import { decodeAny, TYPE_NAMES, type TypeUrl, xdsProtoIncludeDirs } from './protos.ts';

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
  /** The resource, with only its set fields (protos.ts DECODE_OPTIONS). */
  value: Record<string, unknown>;
}

/** What the handler says about a response: null to ACK, or the NACK's error_detail message. */
export type ResponseHandler = (typeUrl: TypeUrl, version: string, resources: DecodedResource[]) => string | null;

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
  private readonly handler: ResponseHandler;
  private readonly events: AdsEvents;
  private readonly types = new Map<TypeUrl, TypeState>();
  private client: grpcTypes.Client | undefined;
  private stream: AdsStream | undefined;
  private nodeSent = false;
  private attempt = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Requests for other types that a response's handler asked for: sent after its ACK or NACK. */
  private deferred: TypeUrl[] | undefined;
  connected = false;

  constructor(opts: { target: string; node: Record<string, unknown>; setNodeOnFirstMessageOnly: boolean; onResponse: ResponseHandler; events: AdsEvents }) {
    this.target = opts.target;
    this.node = opts.node;
    this.nodeOnce = opts.setNodeOnFirstMessageOnly;
    this.handler = opts.onResponse;
    this.events = opts.events;
  }

  start(): void {
    const Ctor = adsService();
    this.client = new Ctor(this.target, grpc.credentials.createInsecure(), {
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
    else this.types.set(typeUrl, { names: sorted, version: '', nonce: '' });
    if (this.deferred) this.deferred.push(typeUrl);
    else this.send(typeUrl);
  }

  /** The subscription of a type, if any. */
  subscribed(typeUrl: TypeUrl): string[] | '*' | undefined {
    return this.types.get(typeUrl)?.names;
  }

  private open(): void {
    if (this.stopped || !this.client) return;
    const stream = (this.client as unknown as { StreamAggregatedResources(): AdsStream }).StreamAggregatedResources();
    this.stream = stream;
    this.nodeSent = false;
    for (const state of this.types.values()) state.nonce = '';
    stream.on('data', (res: Record<string, unknown>) => this.onResponse(stream, res));
    stream.on('error', (err: grpcTypes.ServiceError) => this.lost(stream, `${grpc.status[err.code] ?? err.code}: ${err.details || err.message}`));
    stream.on('end', () => this.lost(stream, 'the server ended the stream'));
    // On a new stream every type is asked for again with the versions accepted so far.
    for (const typeUrl of this.types.keys()) this.send(typeUrl);
  }

  private lost(stream: AdsStream, reason: string): void {
    if (stream !== this.stream || this.stopped) return;
    this.stream = undefined;
    stream.cancel();
    const wasConnected = this.connected;
    this.connected = false;
    // Full jitter (AWS's "exponential backoff and jitter"): many proxies do not reconnect in step.
    const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.min(this.attempt, 16));
    const delay = Math.max(50, Math.round(Math.random() * cap));
    this.attempt++;
    this.events.disconnected(wasConnected ? reason : `${reason} (not connected)`, delay);
    this.timer = setTimeout(() => this.open(), delay);
  }

  private send(typeUrl: TypeUrl, errorDetail?: string): void {
    const state = this.types.get(typeUrl);
    if (!this.stream || !state) return;
    const req: Record<string, unknown> = {
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

  private onResponse(stream: AdsStream, res: Record<string, unknown>): void {
    if (stream !== this.stream) return;
    if (!this.connected) {
      this.connected = true;
      this.attempt = 0;
      this.events.connected();
    }
    const typeUrl = String(res.type_url ?? '') as TypeUrl;
    const state = this.types.get(typeUrl);
    const version = String(res.version_info ?? '');
    const nonce = String(res.nonce ?? '');
    if (!state) return; // a type never asked for: nothing to ACK it against
    state.nonce = nonce;
    let error: string | null;
    this.deferred = [];
    try {
      error = this.handler(typeUrl, version, decodeResources(typeUrl, res.resources));
    } catch (err) {
      error = (err as Error).message;
    }
    const followUps = this.deferred;
    this.deferred = undefined;
    if (error === null) {
      state.version = version;
      this.send(typeUrl);
      this.events.acked(typeUrl, version);
    } else {
      const message = error.slice(0, 4096);
      this.send(typeUrl, message);
      this.events.nacked(typeUrl, version, nonce, message);
    }
    for (const t of new Set(followUps)) this.send(t);
  }
}

/** Each Any of a response, decoded; a resource of the wrong type or that does not decode throws with its index. */
function decodeResources(typeUrl: TypeUrl, resources: unknown): DecodedResource[] {
  const list = Array.isArray(resources) ? resources : [];
  return list.map((any: { type_url?: string; value?: Uint8Array }, i) => {
    const at = `${TYPE_NAMES[typeUrl]} resources[${i}]`;
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
