/**
 * Envoy's v3 xDS protos, as shipped (with their googleapis, xds/udpa and validate imports) in the
 * `@grpc/grpc-js-xds` package's deps/ folder, loaded once with protobufjs the way
 * `@grpc/proto-loader` loads them (its include-path resolution and Google's extra well-known
 * types). Nothing is vendored here: the protos and their licences stay in that package.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, join } from 'node:path';
import type { IConversionOptions, Root, Type } from 'protobufjs';

const require = createRequire(import.meta.url);
// Importing proto-loader registers descriptor.proto and the other well-known types protobufjs lacks.
require('@grpc/proto-loader');
const protobuf = require('protobufjs') as typeof import('protobufjs');

export const TYPE = {
  cluster: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  endpoint: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  listener: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  route: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
  secret: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret',
} as const;
export type TypeUrl = (typeof TYPE)[keyof typeof TYPE];
export type TypeName = 'cds' | 'eds' | 'lds' | 'rds' | 'sds';
export const TYPE_NAMES: Record<TypeUrl, TypeName> = {
  [TYPE.cluster]: 'cds', [TYPE.endpoint]: 'eds', [TYPE.listener]: 'lds', [TYPE.route]: 'rds', [TYPE.secret]: 'sds',
};

/** The proto files Shuttle reads: ADS, the four resource types, and the filters it maps. */
export const XDS_PROTO_FILES = [
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
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  'envoy/extensions/transport_sockets/tls/v3/secret.proto',
  // The HTTP filters http-filters.ts maps, and the compressor libraries.
  'envoy/extensions/filters/http/fault/v3/fault.proto',
  'envoy/extensions/filters/http/rbac/v3/rbac.proto',
  'envoy/extensions/filters/http/jwt_authn/v3/config.proto',
  'envoy/extensions/filters/http/cors/v3/cors.proto',
  'envoy/extensions/filters/http/local_ratelimit/v3/local_rate_limit.proto',
  'envoy/extensions/filters/http/header_mutation/v3/header_mutation.proto',
  'envoy/extensions/filters/http/compressor/v3/compressor.proto',
  'envoy/extensions/compression/gzip/compressor/v3/gzip.proto',
  'envoy/extensions/compression/brotli/compressor/v3/brotli.proto',
  'envoy/extensions/compression/zstd/compressor/v3/zstd.proto',
];

/** deps/ of @grpc/grpc-js-xds: the include directories for the protos above. */
export function xdsProtoIncludeDirs(): string[] {
  const base = dirname(require.resolve('@grpc/grpc-js-xds/package.json'));
  return ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => join(base, 'deps', d));
}

let root: Root | undefined;

/** The loaded protos (~0.25 s the first time, once per process). */
export function xdsRoot(): Root {
  if (root) return root;
  const dirs = xdsProtoIncludeDirs();
  const r = new protobuf.Root();
  r.resolvePath = (_origin, target) => {
    if (isAbsolute(target)) return target;
    for (const d of dirs) if (existsSync(join(d, target))) return join(d, target);
    return target;
  };
  r.loadSync(XDS_PROTO_FILES, { keepCase: true });
  r.resolveAll();
  root = r;
  return r;
}

export function xdsType(name: string): Type {
  return xdsRoot().lookupType(name);
}

/**
 * Decoded messages as plain objects in proto field names: only fields that are set (so that what
 * Shuttle does not honour can be found and named), enums as names, 64-bit integers as strings,
 * nested Any values decoded with their "@type".
 */
export const DECODE_OPTIONS: IConversionOptions = { json: true, longs: String, enums: String, bytes: String };

/** An Any's payload decoded by its type URL; throws on an unknown type or malformed bytes. */
export function decodeAny(any: { type_url?: string; value?: Uint8Array }): Record<string, unknown> {
  const url = any.type_url ?? '';
  const name = url.slice(url.lastIndexOf('/') + 1);
  const type = xdsRoot().lookup(name);
  if (!type || !(type instanceof protobuf.Type)) throw new Error(`unknown resource type ${url}`);
  return type.toObject(type.decode(any.value ?? new Uint8Array()), DECODE_OPTIONS) as Record<string, unknown>;
}
