/**
 * fault: injects delays and aborts into a share of requests (HTTP, gRPC) and calls (Bolt, Dubbo),
 * to test how callers cope. A delay comes first, then the abort (Envoy's order). Delays hold a
 * timer, not a thread: many can be active at once, up to max_active_faults per worker.
 */
import type { HeaderMap } from '../../stream/header-map.ts';
import { valueMatcher } from '../../router/router.ts';
import type { BuiltHttpFilter, BuiltRpcFilter, FilterFactory, FilterStatus, HttpFilter, HttpFilterCallbacks, RpcCallInfo, RpcFilter, RpcFilterCallbacks } from '../api.ts';
import { faultConfig, type FaultConfig } from './config.ts';

/** The fault one request gets, after the dice (and the fault headers, when they are honoured). */
interface Decision {
  delayMs: number;
  abortStatus: number;
  grpcStatus: number | undefined;
}

const roll = (percentage: number) => percentage >= 100 || Math.random() * 100 < percentage;

function headerNumber(get: (name: string) => string | undefined, name: string): number | undefined {
  const v = get(name);
  if (v === undefined) return undefined;
  const n = Number(v);
  return Number.isFinite(n) && n >= 0 ? n : undefined;
}

/** What the request gets, or undefined: no fault. */
function decide(cfg: FaultConfig, get: (name: string) => string | undefined): Decision | undefined {
  let delayMs = 0;
  let abortStatus = 0;
  let grpcStatus: number | undefined;
  if (cfg.header_controlled) {
    const hDelay = headerNumber(get, 'x-envoy-fault-delay-request');
    if (hDelay !== undefined && hDelay > 0 && roll(headerNumber(get, 'x-envoy-fault-delay-request-percentage') ?? 100)) delayMs = Math.min(hDelay, 60_000);
    const hAbort = headerNumber(get, 'x-envoy-fault-abort-request');
    const hGrpc = headerNumber(get, 'x-envoy-fault-abort-grpc-request');
    if ((hAbort !== undefined || hGrpc !== undefined) && roll(headerNumber(get, 'x-envoy-fault-abort-request-percentage') ?? 100)) {
      abortStatus = hAbort !== undefined && hAbort >= 200 && hAbort <= 599 ? Math.floor(hAbort) : 503;
      if (hGrpc !== undefined && hGrpc >= 1 && hGrpc <= 16) grpcStatus = Math.floor(hGrpc);
    }
  }
  if (delayMs === 0 && cfg.delay && roll(cfg.delay.percentage)) delayMs = cfg.delay.fixed_delay;
  if (abortStatus === 0 && cfg.abort && roll(cfg.abort.percentage)) {
    abortStatus = cfg.abort.http_status;
    grpcStatus = cfg.abort.grpc_status;
  }
  return delayMs > 0 || abortStatus > 0 ? { delayMs, abortStatus, grpcStatus } : undefined;
}

/** Shared by one generation's streams: the matchers and the count of active faults. */
class FaultPolicy {
  readonly cfg: FaultConfig;
  private readonly matchers: ((get: (name: string) => string | undefined) => boolean)[];
  active = 0;

  constructor(cfg: FaultConfig) {
    this.cfg = cfg;
    this.matchers = cfg.headers.map((m) => valueMatcher(m, (get: (name: string) => string | undefined, name) => get(name)));
    const nodes = cfg.downstream_nodes;
    if (nodes !== undefined) {
      const set = new Set(nodes);
      this.matchers.push((get) => set.has(get('x-envoy-downstream-service-cluster') ?? ''));
    }
  }

  /** The fault for a request whose headers `get` reads, or undefined. */
  decide(get: (name: string) => string | undefined): Decision | undefined {
    for (const m of this.matchers) if (!m(get)) return undefined;
    if (this.cfg.max_active_faults !== undefined && this.active >= this.cfg.max_active_faults) return undefined;
    return decide(this.cfg, get);
  }
}

/** Runs one request's fault: the delay (a timer, counted among the active faults), then the abort or the go-ahead. */
class FaultRun {
  private readonly policy: FaultPolicy;
  private timer: NodeJS.Timeout | undefined;

  constructor(policy: FaultPolicy) {
    this.policy = policy;
  }

  start(d: Decision, abort: () => void, resume: () => void): void {
    if (d.delayMs === 0) return abort();
    this.policy.active++;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.policy.active--;
      if (d.abortStatus > 0) abort();
      else resume();
    }, d.delayMs);
  }

  cancel(): void {
    if (this.timer === undefined) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.policy.active--;
  }
}

class HttpFault implements HttpFilter {
  private readonly policy: FaultPolicy;
  private readonly cb: HttpFilterCallbacks;
  private readonly run: FaultRun;

  constructor(policy: FaultPolicy, cb: HttpFilterCallbacks) {
    this.policy = policy;
    this.cb = cb;
    this.run = new FaultRun(policy);
  }

  decodeHeaders(h: HeaderMap): FilterStatus {
    const d = this.policy.decide((name) => h.get(name));
    if (d === undefined) return 'continue';
    if (d.delayMs > 0) this.cb.setResponseFlag('DI');
    const abort = () => this.cb.sendLocalReply({ status: d.abortStatus, body: 'fault filter abort', grpcStatus: d.grpcStatus, flag: 'FI', code: 'SHUTTLE_E_FAULT_INJECTED' });
    this.run.start(d, abort, () => this.cb.continueDecoding());
    return 'stop';
  }

  onDestroy(): void {
    this.run.cancel();
  }
}

class RpcFault implements RpcFilter {
  private readonly policy: FaultPolicy;
  private readonly cb: RpcFilterCallbacks;
  private readonly run: FaultRun;

  constructor(policy: FaultPolicy, cb: RpcFilterCallbacks) {
    this.policy = policy;
    this.cb = cb;
    this.run = new FaultRun(policy);
  }

  onRequest({ call }: RpcCallInfo): FilterStatus {
    const d = this.policy.decide((name) => call.header(name));
    if (d === undefined) return 'continue';
    this.run.start(d, () => this.cb.sendLocalReply({ kind: 'fault', message: 'fault filter abort', flag: 'FI' }), () => this.cb.continueCall());
    return 'stop';
  }

  onDestroy(): void {
    this.run.cancel();
  }
}

export const faultFilter: FilterFactory<FaultConfig> = {
  name: 'fault',
  schema: faultConfig,
  buildHttp(cfg): BuiltHttpFilter {
    const policy = new FaultPolicy(cfg);
    return { create: (cb) => new HttpFault(policy, cb) };
  },
  buildRpc(cfg): BuiltRpcFilter {
    const policy = new FaultPolicy(cfg);
    return { create: (cb) => new RpcFault(policy, cb) };
  },
};

