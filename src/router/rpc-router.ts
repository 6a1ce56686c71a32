/**
 * RPC routing (Bolt, Dubbo): the first route whose match fits the call's service, method and
 * headers (Bolt header map, Dubbo attachments) picks the cluster.
 */
import type { RpcRouteConfig } from '../config/route-schema.ts';
import { compileSafeRegex } from '../regex/safe-regex.ts';
import { clusterPicker, valueMatcher } from './router.ts';

export interface RpcCall {
  protocol: 'bolt' | 'dubbo';
  service: string;
  method: string | undefined;
  /** Header or attachment by lower-cased name. */
  header(name: string): string | undefined;
}

export interface RpcRoute {
  readonly name: string;
  /** The route's config (its per_filter_config, by identity). */
  readonly config: RpcRouteConfig;
  /** 0: the caller's timeout from the frame applies. */
  readonly timeout: number;
  /** Retries after an upstream loss (idempotent routes only); 0 otherwise. */
  readonly retries: number;
  cluster(random?: () => number): string | undefined;
}

export class RpcRouter {
  private readonly routes: { route: RpcRoute; matches: (c: RpcCall) => boolean }[];

  constructor(routes: readonly RpcRouteConfig[]) {
    this.routes = routes.map((r, i) => {
      const checks: ((c: RpcCall) => boolean)[] = [];
      const m = r.match;
      if (m.protocol !== undefined) checks.push((c) => c.protocol === m.protocol);
      if (m.service !== undefined) checks.push((c) => c.service === m.service);
      if (m.service_regex !== undefined) {
        const re = compileSafeRegex(m.service_regex);
        checks.push((c) => re.matches(c.service));
      }
      if (m.method !== undefined) checks.push((c) => c.method === m.method);
      for (const h of m.headers) checks.push(valueMatcher<RpcCall>(h, (c, name) => c.header(name)));
      return {
        route: { name: r.name ?? `rpc/${i}`, config: r, timeout: r.timeout, retries: r.retry_policy?.num_retries ?? 0, cluster: clusterPicker(r.cluster, r.weighted_clusters) },
        matches: (c: RpcCall) => {
          for (let k = 0; k < checks.length; k++) if (!checks[k](c)) return false; // (no closure per call)
          return true;
        },
      };
    });
  }

  route(call: RpcCall): RpcRoute | undefined {
    for (const r of this.routes) if (r.matches(call)) return r.route;
    return undefined;
  }
}
