/** header_mutation: adds and removes request and response headers, values from templates. */
import type { HeaderToAdd } from '../../config/route-schema.ts';
import type { HeaderMap } from '../../stream/header-map.ts';
import type { BuiltHttpFilter, FilterFactory, FilterStatus, HttpFilter, HttpFilterCallbacks, StreamInfo } from '../api.ts';
import { headerMutationConfig, type HeaderMutationConfig } from './config.ts';
import { compileTemplate } from './template.ts';

interface Addition {
  name: string;
  lower: string;
  value: (info: StreamInfo, h: HeaderMap) => string;
  append: boolean;
}

const compile = (list: readonly HeaderToAdd[]): Addition[] => list.map((a) => ({ name: a.name, lower: a.name.toLowerCase(), value: compileTemplate(a.value), append: a.append }));

/** Removals first, then additions (Envoy's order). `from`: what templates read (the request). */
function mutate(h: HeaderMap, remove: ReadonlySet<string>, add: readonly Addition[], info: StreamInfo, from: HeaderMap): void {
  h.removeAll(remove);
  for (const a of add) {
    const v = a.value(info, from);
    if (a.append) h.add(a.name, v);
    else h.set(a.name, v);
  }
}

class HeaderMutation implements HttpFilter {
  private readonly m: CompiledMutation;
  private readonly cb: HttpFilterCallbacks;

  constructor(m: CompiledMutation, cb: HttpFilterCallbacks) {
    this.m = m;
    this.cb = cb;
  }

  decodeHeaders(h: HeaderMap): FilterStatus {
    mutate(h, this.m.requestRemove, this.m.requestAdd, this.cb.info, h);
    return 'continue';
  }

  encodeHeaders(h: HeaderMap): FilterStatus {
    mutate(h, this.m.responseRemove, this.m.responseAdd, this.cb.info, this.cb.requestHeaders);
    return 'continue';
  }
}

interface CompiledMutation {
  requestRemove: ReadonlySet<string>;
  requestAdd: Addition[];
  responseRemove: ReadonlySet<string>;
  responseAdd: Addition[];
}

export const headerMutationFilter: FilterFactory<HeaderMutationConfig> = {
  name: 'header_mutation',
  schema: headerMutationConfig,
  buildHttp(cfg): BuiltHttpFilter {
    const m: CompiledMutation = {
      requestRemove: new Set(cfg.request_headers_to_remove.map((n) => n.toLowerCase())),
      requestAdd: compile(cfg.request_headers_to_add),
      responseRemove: new Set(cfg.response_headers_to_remove.map((n) => n.toLowerCase())),
      responseAdd: compile(cfg.response_headers_to_add),
    };
    return { create: (cb) => new HeaderMutation(m, cb) };
  },
};
