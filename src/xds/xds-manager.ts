/**
 * Shuttle as an xDS client: the accepted resources of each type, Envoy's warming order, and the
 * generations they make.
 *
 *   CDS (all clusters) ─▶ EDS for the EDS clusters ─▶ LDS (asked for once the first clusters are
 *   warm) ─▶ RDS for the listeners' route configs
 *
 * A response is mapped (mapping.ts), composed with everything else accepted, and validated by the
 * config schema before it is ACKed; any problem NACKs it with the field path, and nothing of it is
 * kept. A cluster still waiting for its endpoints, or a listener for its routes or clusters, is
 * "warming": the generation keeps its previous version (or leaves a new one out) until it is
 * complete, so nothing half-made is applied. Each new generation goes through the same path as a
 * SIGHUP reload (server.ts), one at a time; the last good one keeps serving when the control
 * plane is away.
 */
import { crossReferenceProblems, type ShuttleConfig } from '../config/schema.ts';
import { diffConfigs, isEmptyDiff } from '../config/diff.ts';
import { GenerationParser } from './generation-parser.ts';
import { formatPath } from '../config/load.ts';
import type { Logger } from '../log/logger.ts';
import { AdsClient, type DecodedResource } from './ads-client.ts';
import type { Bootstrap } from './bootstrap.ts';
import { XdsFieldError } from './fields.ts';
import { mapCluster, mapListener, mapLoadAssignment, mapRouteConfiguration, type MappedCluster, type MappedListener } from './mapping.ts';
import { TYPE, TYPE_NAMES, type TypeName, type TypeUrl } from './protos.ts';
import { mapSecret, resolveSds, type MappedSecret } from './tls.ts';
import { DnsResolvers } from './dns.ts';
import type { DnsTargets } from './mapping.ts';

type Raw = Record<string, unknown>;

interface Accepted {
  clusters: Map<string, MappedCluster>;
  endpoints: Map<string, Raw[]>;
  listeners: Map<string, MappedListener>;
  routes: Map<string, Raw[]>;
  /** SDS secrets (over ADS) that listeners and clusters name. */
  secrets: Map<string, MappedSecret>;
}

/** A composed generation: the config and the PEM its TLS names (never in the config itself). */
export interface ComposedConfig {
  config: Raw;
  secrets: Record<string, string>;
}

export interface TypeStatus {
  version: string;
  last_update: string | null;
  accepted: number;
  rejected: number;
  last_nack: { version: string; nonce: string; message: string; time: string } | null;
  /** Each resource with the version that last changed it. */
  resources: Record<string, { version: string; last_update: string }>;
}

export interface XdsStatus {
  server: string;
  /** The stream runs over TLS (mTLS with a client certificate). */
  tls: boolean;
  /** 'sotw' (state of the world) or 'delta' (incremental). */
  variant: 'sotw' | 'delta';
  node_id: string;
  connected: boolean;
  last_disconnect: { reason: string; time: string } | null;
  warming: { clusters: string[]; listeners: string[] };
  types: Record<TypeName, TypeStatus>;
  last_apply_error: string | null;
}

export interface XdsManagerOptions {
  bootstrap: Bootstrap;
  /** The top of every generation: version, admin, log, … (listeners and clusters come from here). */
  base: Raw;
  logger: Logger;
  /** Applies a generation (with the PEM its TLS names) the way a reload does; resolves when workers run it. */
  apply: (config: ShuttleConfig, secrets: Record<string, string>) => Promise<void>;
  /**
   * After an in-place upgrade: the config the old process's control plane had made (as composed,
   * see runningConfig()), which this process already runs. Its listeners and clusters stand for
   * the ones not received yet, so nothing inherited closes before this stream's LDS answers.
   */
  seed?: ComposedConfig;
}

const newStatus = (): TypeStatus => ({ version: '', last_update: null, accepted: 0, rejected: 0, last_nack: null, resources: {} });

export class XdsManager {
  private readonly opts: XdsManagerOptions;
  private readonly logger: Logger;
  private readonly ads: AdsClient;
  private state: Accepted = { clusters: new Map(), endpoints: new Map(), listeners: new Map(), routes: new Map(), secrets: new Map() };
  /** The last composed generation's clusters and listeners by name: what warming ones fall back to. */
  private lastClusters = new Map<string, Raw>();
  private lastListeners = new Map<string, Raw>();
  private ldsStarted = false;
  private readonly received = new Set<string>();
  /** When each EDS cluster began waiting for its endpoints. */
  private readonly warmingSince = new Map<string, number>();
  private warmingTimer: NodeJS.Timeout | undefined;
  /** STRICT_DNS and LOGICAL_DNS clusters' names, resolved on this thread. */
  private readonly dns: DnsResolvers;
  private readonly startedAt = Date.now();
  private initialized = false;
  private readonly status: XdsStatus;
  private pending: { config: ShuttleConfig; secrets: Record<string, string>; cause: string; since: number; complete: boolean } | undefined;
  private applying: Promise<void> | undefined;
  private lastApplied: ShuttleConfig | undefined;
  /** Each decoded resource's mapping, by the decoded object (see onResponse). */
  private readonly mapped = new WeakMap<object, { fn: unknown; out: unknown }>();
  /** Parses each generation, again only for the listeners and clusters that changed. */
  private readonly parser = new GenerationParser();
  /** The last composed generation as it was composed (Shuttle config input: parseable again). */
  private lastComposed: ComposedConfig | undefined;
  /** Started from a predecessor's config (an upgrade): it serves until LDS says otherwise. */
  private readonly seeded: boolean;

  constructor(opts: XdsManagerOptions) {
    this.opts = opts;
    this.logger = opts.logger;
    this.seeded = opts.seed !== undefined;
    if (opts.seed !== undefined) {
      this.remember(opts.seed);
      const parsed = this.parser.parse(opts.seed.config);
      if (parsed.success) this.lastApplied = parsed.data;
      // What serves is complete: the old process had it from the control plane.
      this.initialized = true;
    }
    const b = opts.bootstrap;
    this.status = {
      server: b.ads.target, tls: !!b.ads.tls, variant: b.ads.delta ? 'delta' : 'sotw', node_id: b.nodeId, connected: false, last_disconnect: null, warming: { clusters: [], listeners: [] },
      types: { cds: newStatus(), eds: newStatus(), lds: newStatus(), rds: newStatus(), sds: newStatus() }, last_apply_error: null,
    };
    this.dns = new DnsResolvers(
      (cluster) => {
        this.logger.info({ cluster, hosts: this.dns.hosts(cluster)?.map((h) => h.address) }, 'xds: DNS cluster resolved');
        this.refresh('dns');
      },
      (cluster, err) => this.logger.warn({ cluster, err: err.message }, 'xds: DNS lookup failed; the addresses found before stay'),
    );
    this.ads = new AdsClient({
      target: b.ads.target, node: b.node, setNodeOnFirstMessageOnly: b.ads.setNodeOnFirstMessageOnly, delta: b.ads.delta, tls: b.ads.tls,
      onResponse: (t, v, r, complete, receivedAt) => this.onResponse(t, v, r, complete, receivedAt),
      events: {
        connected: () => {
          this.status.connected = true;
          this.logger.info({ server: b.ads.target }, 'xds: connected');
        },
        disconnected: (reason, retryInMs) => {
          this.status.connected = false;
          this.status.last_disconnect = { reason, time: new Date().toISOString() };
          this.logger.warn({ server: b.ads.target, reason, retry_in_ms: retryInMs }, 'xds: stream lost; the running config keeps serving');
        },
        acked: (t, version) => this.logger.info({ type: TYPE_NAMES[t], version }, 'xds: ACK'),
        nacked: (t, version, nonce, message) => {
          const s = this.status.types[TYPE_NAMES[t]];
          s.rejected++;
          s.last_nack = { version, nonce, message, time: new Date().toISOString() };
          this.logger.error({ type: TYPE_NAMES[t], version, nonce, error: message }, 'xds: NACK; the previous config keeps serving');
        },
      },
    });
  }

  start(): void {
    this.ads.start();
    if (this.opts.bootstrap.ads.cds) this.ads.subscribe(TYPE.cluster, '*');
    else this.startLds();
  }

  stop(): void {
    clearTimeout(this.warmingTimer);
    this.dns.stop();
    this.ads.stop();
  }

  xdsStatus(): XdsStatus {
    return this.status;
  }

  /** The running generation as composed (what an upgrade hands to the new process), if any. */
  runningConfig(): ComposedConfig | undefined {
    return this.lastComposed;
  }

  /** A composed generation: what warming resources fall back to, and what an upgrade hands on. */
  private remember(composed: ComposedConfig): void {
    this.lastComposed = composed;
    const config = composed.config;
    this.lastClusters = new Map((config.clusters as Raw[]).map((c) => [c.name as string, c]));
    this.lastListeners = new Map((config.listeners as Raw[]).map((l) => [l.name as string, l]));
  }

  private startLds(): void {
    if (this.ldsStarted || !this.opts.bootstrap.ads.lds) return;
    this.ldsStarted = true;
    this.ads.subscribe(TYPE.listener, '*');
  }

  /** Maps, composes and validates a response; null (ACK) or the NACK's message. */
  private onResponse(typeUrl: TypeUrl, version: string, resources: DecodedResource[], complete: boolean, receivedAt: number): string | null {
    const type = TYPE_NAMES[typeUrl];
    const names = new Set<string>();
    for (const r of resources) {
      if (names.has(r.name)) return `${type} resource "${r.name}" appears twice`;
      names.add(r.name);
    }
    const next: Accepted = { ...this.state };
    /** Maps one resource; a field it cannot honour NACKs the response, naming the resource and field. */
    const map = <T>(r: DecodedResource, fn: (m: Raw) => T): T => {
      // Delta hands over every held resource; those not in this response are the same objects as
      // before, and mapping is pure: 10,000 endpoints are not mapped again for one that changed.
      const known = this.mapped.get(r.value);
      if (known && known.fn === fn) return known.out as T;
      try {
        const out = fn(r.value);
        this.mapped.set(r.value, { fn, out });
        return out;
      } catch (err) {
        if (err instanceof XdsFieldError) throw new Error(`${type} resource "${r.name}": ${err.path}: ${err.reason}`);
        throw err;
      }
    };
    const statics = new Set([...this.opts.bootstrap.listeners.map((l) => l.name), ...this.opts.bootstrap.clusters.map((c) => c.name), this.opts.bootstrap.ads.cluster]);
    for (const r of resources) {
      if ((typeUrl === TYPE.listener || typeUrl === TYPE.cluster) && statics.has(r.name)) return `${type} resource "${r.name}": a static resource of the bootstrap has this name (static resources cannot be updated)`;
    }
    if (typeUrl === TYPE.cluster) next.clusters = new Map(resources.map((r) => [r.name, map(r, mapCluster)]));
    else if (typeUrl === TYPE.listener) next.listeners = new Map(resources.map((r) => [r.name, map(r, mapListener)]));
    // SotW EDS and RDS: a response names what it carries; others asked for stay as they were.
    else if (typeUrl === TYPE.endpoint) next.endpoints = new Map([...(complete ? [] : this.state.endpoints), ...resources.map((r) => [r.name, map(r, mapLoadAssignment).hosts] as const)]);
    else if (typeUrl === TYPE.route) next.routes = new Map([...(complete ? [] : this.state.routes), ...resources.map((r) => [r.name, map(r, mapRouteConfiguration).virtual_hosts] as const)]);
    else if (typeUrl === TYPE.secret) next.secrets = new Map([...(complete ? [] : this.state.secrets), ...resources.map((r) => [r.name, map(r, mapSecret)] as const)]);
    // Drop endpoints and routes no cluster or listener asks for any more.
    const edsNames = new Set([...next.clusters.values()].flatMap((c) => (c.edsName ? [c.edsName] : [])));
    const rdsNames = new Set([...next.listeners.values()].flatMap((l) => (l.rdsName ? [l.rdsName] : [])));
    next.endpoints = new Map([...next.endpoints].filter(([n]) => edsNames.has(n)));
    next.routes = new Map([...next.routes].filter(([n]) => rdsNames.has(n)));
    const sdsNames = new Set([...next.clusters.values(), ...next.listeners.values()].flatMap((r) => [...(r.tls?.sds ?? [])]));
    next.secrets = new Map([...next.secrets].filter(([n]) => sdsNames.has(n)));

    const composed = this.compose(next);
    const parsed = this.parser.parse(composed.config);
    const problems = parsed.success ? [] : parsed.issues.map((i) => `${this.describePath(composed.config, i.path)}: ${i.message}`);
    for (const p of crossReferenceProblems(composed.config)) problems.push(`${this.describePath(composed.config, p.path)}: ${p.message}`);
    if (!parsed.success || problems.length > 0) return `${type} version ${version}: the config it makes is invalid: ${problems.slice(0, 5).join('; ')}`;

    // Accepted: each resource keeps the version that last changed it.
    const now = new Date().toISOString();
    const s = this.status.types[type];
    const before = ofType(this.state, typeUrl);
    const after = ofType(next, typeUrl);
    for (const r of resources) {
      const known = s.resources[r.name];
      const changed = !known || (before.get(r.name) !== after.get(r.name) && JSON.stringify(before.get(r.name)) !== JSON.stringify(after.get(r.name))) || (r.version !== undefined && known.version !== r.version);
      if (changed) s.resources[r.name] = { version: r.version ?? version, last_update: now };
    }
    for (const n of Object.keys(s.resources)) if (!after.has(n)) delete s.resources[n];
    s.version = version;
    s.last_update = now;
    s.accepted++;
    this.state = next;
    this.remember(composed);
    this.status.warming = { clusters: composed.warmingClusters, listeners: composed.warmingListeners };
    for (const t of ['eds', 'rds', 'sds'] as const) for (const n of Object.keys(this.status.types[t].resources)) if (!(t === 'eds' ? next.endpoints : t === 'rds' ? next.routes : next.secrets).has(n)) delete this.status.types[t].resources[n];

    // What to ask for next: endpoints of EDS clusters, routes of listeners, listeners once clusters are warm.
    if (edsNames.size > 0 || this.ads.subscribed(TYPE.endpoint)) this.ads.subscribe(TYPE.endpoint, [...edsNames]);
    if (rdsNames.size > 0 || this.ads.subscribed(TYPE.route)) this.ads.subscribe(TYPE.route, [...rdsNames]);
    if (sdsNames.size > 0 || this.ads.subscribed(TYPE.secret)) this.ads.subscribe(TYPE.secret, [...sdsNames]);
    if (composed.warmingClusters.length === 0) this.startLds();
    this.received.add(type);
    this.armWarmingTimer(composed.warmingClusters.length > 0);
    if (typeUrl === TYPE.cluster) this.dns.sync(new Map([...next.clusters.values()].flatMap((c): [string, DnsTargets][] => (c.dns ? [[c.name, c.dns]] : []))));

    this.schedule(parsed.data, composed.secrets, type, receivedAt);
    return null;
  }

  /**
   * Clusters still without endpoints after initial_fetch_timeout serve with none (Envoy ends their
   * warming the same way), so that listeners waiting for them, and LDS, are not held for ever.
   */
  private armWarmingTimer(warming: boolean): void {
    const timeout = this.opts.bootstrap.ads.initialFetchTimeoutMs;
    if (!warming || timeout === 0 || this.warmingTimer) return;
    this.warmingTimer = setTimeout(() => {
      this.warmingTimer = undefined;
      this.refresh('initial_fetch_timeout');
    }, timeout + 10).unref();
  }

  /** Composes the accepted resources again (a DNS answer, a warming deadline) and applies what that makes. */
  private refresh(cause: 'dns' | 'initial_fetch_timeout'): void {
    const composed = this.compose(this.state);
    const parsed = this.parser.parse(composed.config);
    const problems = parsed.success ? crossReferenceProblems(composed.config) : parsed.issues;
    if (!parsed.success || problems.length > 0) {
      this.logger.error({ problems: problems.slice(0, 5).map((p) => `${this.describePath(composed.config, p.path)}: ${p.message}`) }, 'xds: the config made again (DNS answer, initial_fetch_timeout) is invalid; the running one stays');
      return;
    }
    this.remember(composed);
    this.status.warming = { clusters: composed.warmingClusters, listeners: composed.warmingListeners };
    if (composed.warmingClusters.length === 0) this.startLds();
    this.armWarmingTimer(composed.warmingClusters.length > 0);
    this.schedule(parsed.data, composed.secrets, cause);
  }

  /**
   * /ready: false until the first complete config is applied (clusters, and listeners if LDS is
   * on, received, none warming), or initial_fetch_timeout after the start (Envoy's init manager).
   */
  initializing(): boolean {
    if (this.initialized) return false;
    const timeout = this.opts.bootstrap.ads.initialFetchTimeoutMs;
    if (timeout > 0 && Date.now() - this.startedAt > timeout) {
      this.initialized = true;
      this.logger.warn({ after_ms: Date.now() - this.startedAt, warming: this.status.warming }, 'xds: initialized: initial_fetch_timeout passed; serving what has arrived');
    }
    return !this.initialized;
  }

  /** The generation the accepted resources make, warming ones replaced by their previous version. */
  private compose(next: Accepted): ComposedConfig & { warmingClusters: string[]; warmingListeners: string[] } {
    const warmingClusters: string[] = [];
    const warmingListeners: string[] = [];
    const secrets: Record<string, string> = {};
    /** The resource with its TLS made whole (inline PEM, SDS secrets), or undefined while a secret has not arrived. */
    const withTls = (r: MappedCluster | MappedListener, config: Raw): Raw | undefined => {
      if (!r.tls) return config;
      Object.assign(secrets, r.tls.inline);
      return resolveSds(config, r.tls.sds, next.secrets, secrets);
    };
    const clusters: Raw[] = [...this.opts.bootstrap.clusters];
    const now = Date.now();
    const timeout = this.opts.bootstrap.ads.initialFetchTimeoutMs;
    for (const c of next.clusters.values()) {
      let hosts = c.hosts ?? (c.edsName ? next.endpoints.get(c.edsName) : c.dns ? this.dns.hosts(c.name) : undefined);
      if (hosts) this.warmingSince.delete(c.name);
      else {
        const since = this.warmingSince.get(c.name) ?? now;
        this.warmingSince.set(c.name, since);
        if (timeout > 0 && now - since >= timeout) hosts = []; // no endpoints in time: serve with none
      }
      const ready = hosts ? withTls(c, { ...c.config, hosts }) : undefined;
      if (ready) {
        clusters.push(ready);
        continue;
      }
      warmingClusters.push(c.name);
      const previous = this.lastClusters.get(c.name);
      if (previous) clusters.push(previous);
    }
    for (const name of this.warmingSince.keys()) if (!next.clusters.has(name)) this.warmingSince.delete(name);
    const clusterNames = new Set(clusters.map((c) => c.name));
    /**
     * Whether every cluster a listener names is there. A cluster CDS removed while routes still
     * name it is kept (its last version) until they stop naming it: a control plane that removes
     * a cluster before the routes to it must not close a listener (refusing connections).
     */
    const available = (listener: Raw): boolean => {
      const missing = [...new Set(referencedClusters(listener))].filter((n) => !clusterNames.has(n));
      if (!missing.every((n) => this.lastClusters.has(n) && !next.clusters.has(n))) return false;
      for (const n of missing) {
        clusters.push(this.lastClusters.get(n)!);
        clusterNames.add(n);
        keptClusters.push(n);
      }
      return true;
    };
    const keptClusters: string[] = [];
    const listeners: Raw[] = [];
    for (const l of this.opts.bootstrap.listeners) {
      if (available(l)) listeners.push(l);
      else warmingListeners.push(l.name as string);
    }
    for (const l of next.listeners.values()) {
      const virtualHosts = l.rdsName ? next.routes.get(l.rdsName) : (l.config.virtual_hosts as Raw[] | undefined);
      const routed = l.config.protocol === 'http' ? (virtualHosts ? { ...l.config, virtual_hosts: virtualHosts } : undefined) : l.config;
      const candidate = routed ? withTls(l, routed) : undefined;
      if (candidate && available(candidate)) {
        listeners.push(candidate);
        continue;
      }
      warmingListeners.push(l.name);
      const previous = this.lastListeners.get(l.name);
      if (previous && available(previous)) listeners.push(previous);
    }
    if (this.seeded && this.opts.bootstrap.ads.lds && !this.received.has('lds')) {
      // Upgraded, and this stream's LDS has not answered yet: the inherited listeners serve on.
      const have = new Set(listeners.map((l) => l.name));
      for (const [name, l] of this.lastListeners) if (!have.has(name) && available(l)) listeners.push(l);
    }
    if (keptClusters.length > 0) this.logger.warn({ clusters: keptClusters }, 'xds: clusters removed by CDS are kept while routes still name them');
    // Previous versions kept while their replacements warm keep their PEM too.
    const held = this.lastComposed?.secrets ?? {};
    for (const r of [...listeners, ...clusters]) for (const path of tlsPaths(r)) if (!(path in secrets) && path in held) secrets[path] = held[path];
    return { config: { ...this.opts.base, listeners, clusters }, secrets, warmingClusters, warmingListeners };
  }

  /** A problem's place in the composed config, named by the xDS resource it came from. */
  private describePath(config: Raw, path: readonly PropertyKey[]): string {
    const [kind, index, ...rest] = path;
    const list = (config[kind as string] as Raw[] | undefined) ?? [];
    const item = typeof index === 'number' ? list[index] : undefined;
    if (!item) return formatPath(path);
    return `${kind === 'listeners' ? 'listener' : 'cluster'} "${String(item.name)}": ${formatPath(rest) || '(whole)'}`;
  }

  /** Generations are applied one at a time; a newer one replaces any still waiting. */
  private schedule(config: ShuttleConfig, secrets: Record<string, string>, cause: string, since = performance.now()): void {
    // Whether this generation is the whole picture, judged now: by the time it runs, later
    // responses may have completed the picture, but not this generation.
    const complete = (!this.opts.bootstrap.ads.cds || this.received.has('cds')) && (!this.opts.bootstrap.ads.lds || this.received.has('lds'))
      && this.status.warming.clusters.length === 0 && this.status.warming.listeners.length === 0;
    this.pending = { config, secrets, cause, since, complete };
    this.applyPending();
  }

  private applyPending(): void {
    if (this.applying) return;
    this.applying = (async () => {
      while (this.pending) {
        const { config: next, secrets, cause, since, complete } = this.pending;
        this.pending = undefined;
        // Nothing new (a DNS answer or a re-sent response that changes nothing): cheap, as unchanged parts are the same objects.
        if (this.lastApplied && isEmptyDiff(diffConfigs(this.lastApplied, next))) {
          if (complete) this.markInitialized();
          continue;
        }
        try {
          await this.opts.apply(next, secrets);
          this.lastApplied = next;
          this.status.last_apply_error = null;
          if (complete) this.markInitialized();
          // From the response's arrival (or the DNS answer, the warming deadline) to every worker running the generation.
          this.logger.info({ cause, apply_ms: Math.round((performance.now() - since) * 10) / 10 }, 'xds: generation applied');
        } catch (err) {
          this.status.last_apply_error = (err as Error).message;
          this.logger.error({ err: (err as Error).message }, 'xds: applying a generation failed');
        }
      }
    })().finally(() => {
      this.applying = undefined;
      if (this.pending) this.applyPending();
    });
  }

  private markInitialized(): void {
    if (this.initialized) return;
    this.initialized = true;
    this.logger.info({ after_ms: Date.now() - this.startedAt }, 'xds: initialized: the first complete config serves');
  }
}

/** The names a listener's or cluster's `tls` gives for PEM (certificates, keys, CAs). */
function tlsPaths(r: Raw): string[] {
  const tls = r.tls as Raw | undefined;
  if (!tls) return [];
  const out = ['cert', 'key', 'ca', 'client_ca'].map((k) => tls[k]).filter((v): v is string => typeof v === 'string');
  for (const c of (tls.certificates as { cert: string; key: string }[] | undefined) ?? []) out.push(c.cert, c.key);
  return out;
}

/** The accepted resources of one type, by name. */
function ofType(state: Accepted, typeUrl: TypeUrl): Map<string, unknown> {
  if (typeUrl === TYPE.cluster) return state.clusters;
  if (typeUrl === TYPE.listener) return state.listeners;
  if (typeUrl === TYPE.secret) return state.secrets;
  return typeUrl === TYPE.endpoint ? state.endpoints : state.routes;
}

/** Clusters a listener's routes or TCP proxy send to. */
export function referencedClusters(listener: Raw): string[] {
  const out: string[] = [];
  if (typeof listener.cluster === 'string') out.push(listener.cluster);
  for (const vh of (listener.virtual_hosts as Raw[] | undefined) ?? []) {
    for (const r of (vh.routes as Raw[] | undefined) ?? []) {
      if (typeof r.cluster === 'string') out.push(r.cluster);
      for (const w of (r.weighted_clusters as Raw[] | undefined) ?? []) out.push(w.name as string);
      for (const m of (r.request_mirror_policies as Raw[] | undefined) ?? []) out.push(m.cluster as string);
    }
  }
  return out;
}
