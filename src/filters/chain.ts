/**
 * A listener's filter chains for one config generation, built once (each filter's `build` runs
 * here, not per request), with the variant of each route that has `per_filter_config`.
 */
import { createHash } from 'node:crypto';
import type { FilterEntryConfig } from '../config/filter-schema.ts';
import type { BuiltHttpFilter, BuiltRpcFilter, FilterBuildContext } from './api.ts';
import { FILTERS } from './registry.ts';

type BuildContext = Omit<FilterBuildContext, 'key'>;
type RouteWithFilters = { readonly per_filter_config?: Readonly<Record<string, unknown>> };

/** A stable name for a filter's state across reloads: it changes when its config does. */
function stateKey(listener: string, scope: string, name: string, config: unknown): string {
  return `${listener}|${scope}|${name}|${createHash('sha1').update(JSON.stringify(config) ?? '').digest('base64url').slice(0, 12)}`;
}

class Chain<B extends { close?(): void }> {
  private readonly base: readonly B[];
  private readonly byRoute = new Map<object, readonly B[]>();
  private readonly built: B[] = [];

  constructor(listener: string, entries: readonly FilterEntryConfig[], routes: readonly RouteWithFilters[], build: (name: string, config: unknown, key: string) => B) {
    this.base = entries.map((e) => this.keep(build(e.name, e.config, stateKey(listener, '*', e.name, e.config))));
    routes.forEach((route, i) => {
      const per = route.per_filter_config;
      if (per === undefined) return;
      const list: B[] = [];
      entries.forEach((e, fi) => {
        const override = per[e.name] as { disabled?: boolean } | undefined;
        if (override === undefined) list.push(this.base[fi]);
        else if (!override.disabled) list.push(this.keep(build(e.name, override, stateKey(listener, `route${i}`, e.name, override))));
      });
      this.byRoute.set(route, list);
    });
  }

  private keep(b: B): B {
    this.built.push(b);
    return b;
  }

  /** The filters a request on `route` runs (the listener's, with the route's changes). */
  forRoute(route: object | undefined): readonly B[] {
    return (route !== undefined ? this.byRoute.get(route) : undefined) ?? this.base;
  }

  /** The generation is retired: refresh timers stop. */
  close(): void {
    for (const b of this.built) b.close?.();
  }
}

export class HttpFilterChain extends Chain<BuiltHttpFilter> {
  constructor(listener: string, entries: readonly FilterEntryConfig[], routes: readonly RouteWithFilters[], ctx: BuildContext) {
    super(listener, entries, routes, (name, config, key) => FILTERS[name].buildHttp!(config, { ...ctx, key }));
  }
}

export class RpcFilterChain extends Chain<BuiltRpcFilter> {
  constructor(listener: string, entries: readonly FilterEntryConfig[], routes: readonly RouteWithFilters[], ctx: BuildContext) {
    super(listener, entries, routes, (name, config, key) => FILTERS[name].buildRpc!(config, { ...ctx, key }));
  }
}
