/**
 * Header work of the HTTP proxy, on protocol-neutral HeaderMaps (so it is the same for HTTP/1 and
 * HTTP/2 on either side): what goes upstream (X-Forwarded-*, route rewrites and mutations) and
 * what comes back (route mutations). Connection-specific fields never need removing here: no
 * encoder copies them (see header-map.ts).
 */
import type { HeaderToAdd } from '../../config/route-schema.ts';
import type { Route } from '../../router/router.ts';
import type { ForwardClientCert } from '../../config/tls-schema.ts';
import type { PeerCertificate } from '../../net/tls-server.ts';
import { HeaderMap, sameName } from '../../stream/header-map.ts';

function addHeaders(h: HeaderMap, adds: readonly HeaderToAdd[]): void {
  for (const add of adds) {
    if (add.append) h.add(add.name, add.value);
    else h.set(add.name, add.value);
  }
}

/**
 * Rewrites a request for its upstream, in place, once (retries send the same map): prefix and
 * host rewrites, X-Forwarded-For appended to, X-Forwarded-Proto and -Host set when absent, the
 * route's removals then additions.
 */
export function prepareUpstreamRequest(h: HeaderMap, route: Route, clientIp: string): void {
  const cfg = route.config;
  if (cfg.prefix_rewrite !== undefined && cfg.match.prefix !== undefined && h.path.startsWith(cfg.match.prefix)) {
    h.path = cfg.prefix_rewrite + h.path.slice(cfg.match.prefix.length);
  }
  const originalAuthority = h.authority;
  if (cfg.host_rewrite !== undefined) h.authority = cfg.host_rewrite;
  const f = h.fields;
  let xff: string | undefined;
  let xffAt = -1;
  let hasProto = false;
  let hasHost = false;
  for (let i = 0; i < f.length; i += 2) {
    const name = f[i];
    const n = name.length;
    if (n !== 15 && n !== 16 && n !== 17) continue;
    if (sameName(name, 'x-forwarded-for')) {
      xff = xff === undefined ? f[i + 1] : `${xff}, ${f[i + 1]}`;
      if (xffAt < 0) xffAt = i;
      else f[i] = ''; // merged into the first one
    } else if (sameName(name, 'x-forwarded-proto')) hasProto = true;
    else if (sameName(name, 'x-forwarded-host')) hasHost = true;
  }
  const value = xff === undefined ? clientIp : `${xff}, ${clientIp}`;
  if (xffAt >= 0) {
    f[xffAt + 1] = value;
    if (f.indexOf('') >= 0) h.remove('');
  } else {
    f.push('X-Forwarded-For', value);
  }
  if (!hasProto) f.push('X-Forwarded-Proto', h.scheme || 'http');
  if (!hasHost && originalAuthority) f.push('X-Forwarded-Host', originalAuthority);
  h.removeAll(route.requestHeadersToRemove);
  if (route.requestHeadersToAdd.length > 0) addHeaders(h, route.requestHeadersToAdd);
}

/** One x-forwarded-client-cert element for a client certificate (Envoy's format). */
export function clientCertElement(peer: PeerCertificate): string {
  let out = `Hash=${peer.hash}`;
  if (peer.subject) out += `;Subject="${peer.subject.replace(/["\\]/g, (c) => `\\${c}`)}"`;
  for (const uri of peer.uriSans) out += `;URI=${uri}`;
  for (const dns of peer.dnsSans) out += `;DNS=${dns}`;
  return out;
}

/**
 * x-forwarded-client-cert by the listener's forward_client_cert (Envoy's modes). Only an mTLS
 * connection may carry one on: forward passes the client's on, append_forward adds this
 * connection's client certificate to it, sanitize_set replaces it with this connection's, and
 * sanitize drops it. Without a client certificate (or without TLS) it is always dropped.
 */
export function forwardClientCert(h: HeaderMap, mode: ForwardClientCert | undefined, peer: PeerCertificate | undefined): void {
  if (peer !== undefined && mode === 'forward') return;
  const received = peer !== undefined && mode === 'append_forward' ? h.get('x-forwarded-client-cert') : undefined;
  h.remove('x-forwarded-client-cert');
  if (peer === undefined || mode === undefined || mode === 'sanitize') return;
  const ours = clientCertElement(peer);
  h.add('x-forwarded-client-cert', received === undefined ? ours : `${received},${ours}`);
}

/** The route's response mutations, in place. */
export function prepareDownstreamResponse(h: HeaderMap, route: Route | undefined): void {
  if (route === undefined) return;
  h.removeAll(route.responseHeadersToRemove);
  if (route.responseHeadersToAdd.length > 0) addHeaders(h, route.responseHeadersToAdd);
}
