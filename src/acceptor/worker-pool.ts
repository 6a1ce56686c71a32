/**
 * Starts and supervises the worker threads, one per slot (a row in the shared tables). A worker
 * that dies unexpectedly is logged and replaced in its slot (with back-off if it keeps dying); the
 * other workers and their connections never notice. In handoff mode it also hands each accepted
 * socket to the ready worker with the fewest active connections, read from the shared load table.
 *
 * replaceAll() swaps the whole set (a reload that needs fresh threads): new workers start in free
 * slots, and only once all are ready do the old ones stop taking connections and drain. In
 * reuseport mode the new ones take the old ones' listening sockets over first (`takeOver`).
 */
import type net from 'node:net';
import { randomBytes } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import type { LogLevel } from '../config/schema.ts';
import type { LogFormat, Logger } from '../log/logger.ts';
import { MAX_WORKER_SLOTS } from '../shared/directory.ts';
import type { UpstreamEvent } from '../shared/events.ts';
import type { HealthTable } from '../shared/health-table.ts';
import { PolicyTable } from '../filters/shared/policy-table.ts';
import { LoadTable, WorkerState, type WorkerLoad } from '../shared/load-table.ts';
import { Ring } from '../shared/ring.ts';
import type { StatsTable } from '../shared/stats-table.ts';
import type { RequestTable } from '../shared/request-table.ts';
import { encodeSnapshot } from '../shared/snapshot.ts';
import type { BalanceMode, BoundListener, ConfigSnapshot, HostsUpdate, MainToWorker, WorkerInit, WorkerToMain } from '../workers/messages.ts';
import type { MigratedState } from '../upgrade/migration.ts';
import { closeAccepted, transferList, type AcceptedConnection } from './raw-accept.ts';

const WORKER_ENTRY = new URL('../workers/worker.ts', import.meta.url);
/** A worker that comes up and then dies this soon counts as crash-looping. */
const CRASH_WINDOW_MS = 30_000;
const MAX_RESTART_DELAY_MS = 5_000;
const ELU_WINDOW_MS = 1_000;
/** How often TLS session ticket keys are replaced. */
const TICKET_KEY_ROTATION_MS = 12 * 3_600_000;
/** A worker told to exit that has not exited by then is terminated. */
const EXIT_BACKSTOP_MS = 1_000;
/** Per worker → main ring: room for thousands of events between two wake-ups of the main loop. */
const EVENT_RING_BYTES = 64 * 1024;

export interface WorkerPoolOptions {
  threads: number;
  /** The generation new workers start with (publish() replaces it). */
  snapshot: ConfigSnapshot;
  balance: BalanceMode;
  logLevel: LogLevel;
  logFormat: LogFormat;
  colorize: boolean;
  /** The config file (access-log paths are relative to its folder). */
  configFile: string;
  logger: Logger;
  stats: StatsTable;
  requests: RequestTable;
  health: HealthTable;
  /** Called on the main thread for each event a worker reports. */
  onEvent: (event: UpstreamEvent) => void;
}

/** A running worker and its slot. */
export interface PoolWorker {
  slot: number;
  worker: Worker;
}

function workersOf(slots: Slot[]): PoolWorker[] {
  return slots.flatMap((s) => (s.worker ? [{ slot: s.index, worker: s.worker }] : []));
}

interface Slot {
  readonly index: number;
  /** Part of the current worker set (replaced when it dies); false while an old worker drains. */
  member: boolean;
  worker: Worker | undefined;
  workerId: number;
  /** Worker exits expected by us (drain, stop): not crashes. */
  expectingExit: boolean;
  recentCrashes: number;
  lastStart: number;
  restartTimer: NodeJS.Timeout | undefined;
  listeners: BoundListener[];
  /** Outlives the worker: a replacement reuses its slot's ring. Created on first use. */
  events: Ring | undefined;
  /** Event-loop utilization over the last sampling window, and the sample it was measured from. */
  elu: number | null;
  eluSample: ReturnType<Worker['performance']['eventLoopUtilization']> | undefined;
}

export interface WorkerInfo extends WorkerLoad {
  workerId: number;
  threadId: number | null;
  restarts: number;
  /** Event-loop utilization (0..1) since the previous read. */
  eventLoopUtilization: number | null;
  /** Events this slot's ring dropped because it was full (see Ring). */
  droppedEvents: number;
}

export class WorkerPool {
  readonly loadTable: LoadTable;
  /** Rate-limit buckets and circuit-breaker counts, shared by every worker (see PolicyTable). */
  readonly policy: PolicyTable;
  private readonly opts: WorkerPoolOptions;
  private readonly slots: Slot[];
  private readonly stopEvents = new AbortController();
  private readonly eluTimer: NodeJS.Timeout;
  private nextWorkerId = 1;
  private rotor = 0;
  private stopping = false;
  private restarts = 0;
  /** TLS session ticket keys, the same in every worker (a session resumes on any), rotated. */
  private ticketKeys = new Uint8Array(randomBytes(48));
  private readonly ticketTimer: NodeJS.Timeout;

  constructor(opts: WorkerPoolOptions) {
    this.opts = opts;
    this.loadTable = LoadTable.create(MAX_WORKER_SLOTS);
    this.policy = PolicyTable.create();
    this.slots = Array.from({ length: MAX_WORKER_SLOTS }, (_, index) => ({
      index, member: false, worker: undefined, workerId: 0, expectingExit: false, recentCrashes: 0, lastStart: 0, restartTimer: undefined, listeners: [],
      events: undefined,
      elu: null,
      eluSample: undefined,
    }));
    // Read from each worker's loop counters by the runtime itself: no message to the worker.
    this.eluTimer = setInterval(() => this.sampleElu(), ELU_WINDOW_MS).unref();
    this.ticketTimer = setInterval(() => this.rotateTicketKeys(), TICKET_KEY_ROTATION_MS).unref();
  }

  /**
   * New session ticket keys for every worker. A ticket made with the old keys no longer resumes
   * (one full handshake); rotation bounds how long a stolen key decrypts recorded sessions.
   */
  rotateTicketKeys(): void {
    this.ticketKeys = new Uint8Array(randomBytes(48));
    for (const slot of this.slots) slot.worker?.postMessage({ type: 'ticket-keys', keys: this.ticketKeys } satisfies MainToWorker);
  }

  /** The log level of worker threads, those started from now on included. */
  get logLevel(): LogLevel {
    return this.opts.logLevel;
  }

  /** A new log level for every worker, and for the ones started from now on. */
  setLogLevel(level: LogLevel): void {
    this.opts.logLevel = level;
    for (const slot of this.slots) slot.worker?.postMessage({ type: 'log-level', level } satisfies MainToWorker);
  }

  /** Log rotation (SIGUSR1): every worker opens its access-log files again. */
  reopenLogs(): void {
    for (const slot of this.slots) slot.worker?.postMessage({ type: 'reopen-logs' } satisfies MainToWorker);
  }

  /** Workers in the current set. */
  get size(): number {
    return this.slots.filter((s) => s.member).length;
  }

  /**
   * Starts `threads` workers; resolves when all are ready, rejects if one fails to start.
   * `deferListen` (reuseport, new process of an upgrade): they bind nothing until told (see
   * upgrade/reuseport-handover.ts).
   */
  async start(threads = this.opts.threads, deferListen = false): Promise<BoundListener[][]> {
    const chosen = this.freeSlots(threads);
    for (const slot of chosen) slot.member = true;
    return Promise.all(chosen.map((slot) => this.spawn(slot, deferListen)));
  }

  /**
   * Replaces the whole worker set with `threads` new workers (running the current snapshot).
   * The old workers keep serving until every new one is ready; then they stop taking connections
   * and drain for `drainMs`. If a new worker fails to start, the new ones are stopped and the old
   * set keeps serving.
   */
  async replaceAll(threads: number, drainMs: number, takeOver?: (fresh: PoolWorker[], old: PoolWorker[]) => Promise<BoundListener[]>): Promise<BoundListener[][]> {
    const old = this.slots.filter((s) => s.member);
    const fresh = this.freeSlots(threads);
    if (fresh.length < threads) throw new Error(`no room for ${threads} more workers (at most ${MAX_WORKER_SLOTS} at once)`);
    for (const slot of fresh) slot.member = true;
    let bound: BoundListener[][];
    try {
      bound = await Promise.all(fresh.map((slot) => this.spawn(slot, takeOver !== undefined)));
      if (takeOver) bound = [await takeOver(workersOf(fresh), workersOf(old))];
    } catch (err) {
      for (const slot of fresh) {
        slot.member = false;
        slot.expectingExit = true;
        void slot.worker?.terminate();
      }
      throw err;
    }
    for (const slot of old) {
      slot.member = false;
      this.retire(slot, drainMs);
    }
    this.opts.logger.info({ started: fresh.map((s) => s.workerId), draining: old.map((s) => s.workerId), drain_ms: drainMs }, 'worker threads replaced');
    return bound;
  }

  private freeSlots(n: number): Slot[] {
    return this.slots.filter((s) => !s.member && !s.worker).slice(0, n);
  }

  /** Stops a worker taking connections and lets it drain; its slot frees when it exits. */
  private retire(slot: Slot, drainMs: number): void {
    clearTimeout(slot.restartTimer);
    const worker = slot.worker;
    if (!worker) return;
    slot.expectingExit = true;
    this.loadTable.setState(slot.index, WorkerState.DRAINING);
    worker.postMessage({ type: 'drain', deadlineMs: drainMs } satisfies MainToWorker);
    // The worker closes what is left at the deadline itself; this is the backstop for a stuck one.
    setTimeout(() => void worker.terminate(), drainMs + 2_000).unref();
  }

  /** Hands an accepted, untouched connection to the least-loaded ready worker. */
  dispatch(listener: string, socket: AcceptedConnection): boolean {
    const index = this.loadTable.leastLoaded(this.rotor);
    this.rotor = (this.rotor + 1) % this.slots.length;
    const worker = index >= 0 ? this.slots[index].worker : undefined;
    if (!worker) {
      closeAccepted(socket);
      return false;
    }
    this.loadTable.connectionOpened(index);
    try {
      const msg: MainToWorker = { type: 'connection', listener, socket };
      worker.postMessage(msg, transferList(socket));
      return true;
    } catch (err) {
      this.loadTable.connectionClosed(index);
      this.opts.logger.error({ err, slot: index }, 'socket hand-off failed');
      closeAccepted(socket);
      return false;
    }
  }

  // ---- connection migration (upgrade/migration.ts) ---------------------------------------------

  /** Old process: migration reports from workers; new process: adoption answers. */
  onMigration: ((slot: number, msg: WorkerToMain) => void) | undefined;

  /**
   * Old process: every worker moves its connections to the new process (or drains those that
   * can't move); resolves when each has settled (or exited). Workers then exit once empty.
   */
  migrate(windowMs: number): Promise<void> {
    const settled: Promise<void>[] = [];
    for (const slot of this.slots) {
      const worker = slot.worker;
      if (!worker) continue;
      clearTimeout(slot.restartTimer);
      slot.expectingExit = true;
      this.loadTable.setState(slot.index, WorkerState.DRAINING);
      settled.push(new Promise<void>((resolve) => {
        const onMessage = (m: WorkerToMain) => {
          if (m.type === 'migrate-settled') done();
        };
        const done = () => {
          worker.off('message', onMessage);
          worker.off('exit', done);
          resolve();
        };
        worker.on('message', onMessage);
        worker.once('exit', done);
      }));
      worker.postMessage({ type: 'migrate', windowMs } satisfies MainToWorker);
    }
    return Promise.all(settled).then(() => {});
  }

  /** Old process, the new one gone mid-migration: workers serve again; any that exited meanwhile is replaced. */
  abortMigration(): void {
    for (const slot of this.slots) {
      if (!slot.member) continue;
      slot.expectingExit = false;
      if (slot.worker) {
        this.loadTable.setState(slot.index, WorkerState.READY);
        slot.worker.postMessage({ type: 'migrate-abort' } satisfies MainToWorker);
      } else {
        this.spawn(slot).catch((err) => this.opts.logger.error({ err, slot: slot.index }, 'replacement worker failed to start'));
      }
    }
  }

  /** Old process: a message to the worker in `slot` (commit or roll back one connection). */
  postTo(slot: number, msg: MainToWorker): void {
    this.slots[slot]?.worker?.postMessage(msg);
  }

  /** New process: a connection moved from the old process goes to the least-loaded worker. */
  adopt(id: string, state: MigratedState, sockets: net.Socket[]): boolean {
    const index = this.loadTable.leastLoaded(this.rotor);
    this.rotor = (this.rotor + 1) % this.slots.length;
    const worker = index >= 0 ? this.slots[index].worker : undefined;
    if (!worker) return false;
    this.loadTable.connectionOpened(index);
    try {
      worker.postMessage({ type: 'adopt', id, state, sockets } satisfies MainToWorker, sockets);
      return true;
    } catch (err) {
      this.loadTable.connectionClosed(index);
      this.opts.logger.error({ err, slot: index }, 'moved connection hand-off failed');
      return false;
    }
  }

  /**
   * Sends a new config generation to every worker; resolves when all have applied it (a worker
   * started from now on starts with it). Rejects if a worker fails to apply it or times out.
   */
  /** The generation that workers started from now on run. */
  setSnapshot(snapshot: ConfigSnapshot): void {
    this.opts.snapshot = snapshot;
  }

  publish(snapshot: ConfigSnapshot, timeoutMs = 10_000): Promise<void> {
    this.opts.snapshot = snapshot;
    const shared = encodeSnapshot(snapshot);
    return this.broadcast(snapshot.generation, { type: 'config', generation: snapshot.generation, snapshot: shared }, timeoutMs);
  }

  /**
   * A generation that changes only the hosts of `clusters` (see hostsOnlyChange): workers swap
   * those clusters in place. New workers start from the whole snapshot as usual.
   */
  publishHosts(snapshot: ConfigSnapshot, clusters: readonly string[], timeoutMs = 10_000): Promise<void> {
    this.opts.snapshot = snapshot;
    const wanted = new Set(clusters);
    const update: HostsUpdate = { generation: snapshot.generation, clusters: [] };
    snapshot.config.clusters.forEach((c, position) => {
      if (wanted.has(c.name)) update.clusters.push({ position, config: c, hostIds: snapshot.ids.hosts[position] });
    });
    return this.broadcast(snapshot.generation, { type: 'hosts', generation: snapshot.generation, update: encodeSnapshot(update) }, timeoutMs);
  }

  /** Sends a generation to every member worker; resolves when all applied it. */
  private broadcast(generation: number, message: MainToWorker, timeoutMs: number): Promise<void> {
    const waits = this.slots.filter((s) => s.worker && s.member).map((slot) => new Promise<void>((resolve, reject) => {
      const worker = slot.worker!;
      const timer = setTimeout(() => done(new Error(`worker ${slot.workerId} did not apply generation ${generation} in ${timeoutMs}ms`)), timeoutMs);
      const onMessage = (msg: WorkerToMain) => {
        if (msg.type === 'config-applied' && msg.generation === generation) done();
        else if (msg.type === 'config-failed' && msg.generation === generation) done(new Error(`worker ${slot.workerId}: ${msg.error}`));
      };
      // A worker that exits meanwhile is replaced with the new generation already.
      const onExit = () => done();
      const done = (err?: Error) => {
        clearTimeout(timer);
        worker.off('message', onMessage);
        worker.off('exit', onExit);
        if (err) reject(err);
        else resolve();
      };
      worker.on('message', onMessage);
      worker.once('exit', onExit);
      worker.postMessage(message);
    }));
    return Promise.all(waits).then(() => undefined);
  }

  /**
   * Ends a worker abruptly, as a crash would; the supervisor replaces it. The acceptor stops
   * choosing it first, and the worker hands back connections that were already on their way.
   */
  terminate(index: number): boolean {
    const slot = this.slots[index];
    if (!slot?.worker) return false;
    this.kill(slot);
    return true;
  }

  /** EXITING, then exit-now behind every hand-off already posted; terminate() if it does not. */
  private kill(slot: Slot): void {
    const worker = slot.worker;
    if (!worker) return;
    this.loadTable.setState(slot.index, WorkerState.EXITING);
    worker.postMessage({ type: 'exit-now' } satisfies MainToWorker);
    setTimeout(() => {
      if (slot.worker === worker) void worker.terminate();
    }, EXIT_BACKSTOP_MS).unref();
  }

  info(): WorkerInfo[] {
    return this.slots.filter((s) => s.member || s.worker).map((slot) => ({
      ...this.loadTable.read(slot.index),
      workerId: slot.workerId,
      threadId: slot.worker?.threadId ?? null,
      restarts: slot.recentCrashes,
      eventLoopUtilization: slot.worker ? slot.elu : null,
      droppedEvents: slot.events?.dropped ?? 0,
    }));
  }

  /**
   * V8 heap in use by each worker (each is its own isolate: the process metrics show the main
   * thread's heap only). Asked of the runtime at scrape time; a worker exiting meanwhile is left out.
   */
  async heapUsed(): Promise<{ slot: number; bytes: number }[]> {
    const live = this.slots.filter((s) => s.worker !== undefined);
    const read = await Promise.all(live.map(async (s) => {
      try {
        return { slot: s.index, bytes: (await s.worker!.getHeapStatistics()).used_heap_size };
      } catch {
        return undefined;
      }
    }));
    return read.filter((r) => r !== undefined);
  }

  /** Events dropped because a worker's ring was full (see Ring). */
  get droppedEvents(): number {
    return this.slots.reduce((n, s) => n + (s.events?.dropped ?? 0), 0);
  }

  private sampleElu(): void {
    for (const slot of this.slots) {
      if (!slot.worker) continue;
      const now = slot.worker.performance.eventLoopUtilization();
      slot.elu = slot.eluSample ? slot.worker.performance.eventLoopUtilization(now, slot.eluSample).utilization : now.utilization;
      slot.eluSample = now;
    }
  }

  get totalRestarts(): number {
    return this.restarts;
  }

  /** Asks every worker to drain; resolves when all have exited (or been stopped at the deadline). */
  async drain(deadlineMs: number): Promise<void> {
    this.stopping = true;
    const pending: Promise<void>[] = [];
    for (const slot of this.slots) {
      clearTimeout(slot.restartTimer);
      const worker = slot.worker;
      if (!worker) continue;
      slot.expectingExit = true;
      this.loadTable.setState(slot.index, WorkerState.DRAINING);
      pending.push(new Promise((resolve) => worker.once('exit', () => resolve())));
      worker.postMessage({ type: 'drain', deadlineMs } satisfies MainToWorker);
    }
    // Workers close what is left at the deadline themselves; this is the backstop for a stuck one.
    const backstop = setTimeout(() => this.terminateAll(), deadlineMs + 2_000);
    await Promise.all(pending);
    clearTimeout(backstop);
    this.stopEvents.abort();
    clearInterval(this.eluTimer);
    clearInterval(this.ticketTimer);
  }

  terminateAll(): void {
    this.stopping = true;
    this.stopEvents.abort();
    clearInterval(this.eluTimer);
    clearInterval(this.ticketTimer);
    for (const slot of this.slots) {
      clearTimeout(slot.restartTimer);
      slot.expectingExit = true;
      void slot.worker?.terminate();
    }
  }

  /** The running workers of the current set, by slot. */
  members(): PoolWorker[] {
    return workersOf(this.slots.filter((s) => s.member));
  }

  /** The worker running in `slot` now, if any. */
  workerAt(slot: number): Worker | undefined {
    return this.slots[slot]?.worker;
  }

  private spawn(slot: Slot, deferListen = false): Promise<BoundListener[]> {
    const workerId = this.nextWorkerId++;
    if (!slot.events) {
      const ring = Ring.create(EVENT_RING_BYTES);
      slot.events = ring;
      void ring.consume((e) => this.opts.onEvent(e as UpstreamEvent), this.stopEvents.signal);
    }
    const init: WorkerInit = {
      workerId,
      slot: slot.index,
      generation: this.opts.snapshot.generation,
      config: this.opts.snapshot.config,
      secrets: this.opts.snapshot.secrets,
      ids: this.opts.snapshot.ids,
      ticketKeys: this.ticketKeys,
      loadTable: this.loadTable.buffer,
      policy: this.policy.buffer,
      stats: this.opts.stats.buffer,
      requests: this.opts.requests.buffer,
      health: this.opts.health.buffer,
      events: slot.events.buffer,
      balance: this.opts.balance,
      logLevel: this.opts.logLevel,
      logFormat: this.opts.logFormat,
      colorize: this.opts.colorize,
      configFile: this.opts.configFile,
      deferListen,
    };
    const worker = new Worker(WORKER_ENTRY, { workerData: init, name: `shuttle-worker-${slot.index}`, resourceLimits: process.env.SHUTTLE_YOUNG_MB ? { maxYoungGenerationSizeMb: Number(process.env.SHUTTLE_YOUNG_MB) } : undefined });
    slot.worker = worker;
    slot.workerId = workerId;
    slot.expectingExit = false;
    slot.lastStart = Date.now();
    this.loadTable.reset(slot.index, WorkerState.STARTING);
    const log = this.opts.logger;

    return new Promise((resolve, reject) => {
      let ready = false;
      worker.on('message', (msg: WorkerToMain) => {
        if (msg.type === 'ready') {
          ready = true;
          slot.listeners = msg.listeners;
          this.loadTable.setState(slot.index, WorkerState.READY);
          slot.eluSample = worker.performance.eventLoopUtilization();
          slot.elu = slot.eluSample.utilization;
          log.info({ slot: slot.index, worker: workerId, thread_id: worker.threadId }, 'worker ready');
          resolve(msg.listeners);
        } else if (msg.type === 'bounce') {
          this.loadTable.connectionClosed(slot.index);
          this.dispatch(msg.listener, msg.socket);
        } else if (msg.type === 'migrate-out' || msg.type === 'migrate-fallback' || msg.type === 'migrate-settled' || msg.type === 'adopted') {
          this.onMigration?.(slot.index, msg);
        } else if (msg.type === 'fatal') {
          this.kill(slot);
        } else if (msg.type === 'listen-failed') {
          reject(new Error(`worker ${workerId} could not bind listener ${msg.listener}: ${msg.error}`));
        }
      });
      worker.on('error', (err) => {
        log.error({ err, slot: slot.index, worker: workerId }, 'worker crashed');
        if (!ready) reject(err);
      });
      worker.on('exit', (code) => {
        if (slot.worker === worker) slot.worker = undefined;
        slot.elu = null;
        slot.eluSample = undefined;
        this.loadTable.reset(slot.index, WorkerState.EMPTY);
        this.opts.stats.zeroGauges(slot.index);
        // What it held open (requests, connections, retries) no longer counts against the breakers.
        this.policy.reclaim(slot.index);
        if (!ready) reject(new Error(`worker ${workerId} exited with code ${code} before it was ready`));
        if (slot.expectingExit || this.stopping || !slot.member) {
          log.info({ slot: slot.index, worker: workerId, code }, 'worker exited');
          return;
        }
        this.replace(slot, code);
      });
    });
  }

  private replace(slot: Slot, code: number): void {
    this.restarts++;
    const upFor = Date.now() - slot.lastStart;
    slot.recentCrashes = upFor < CRASH_WINDOW_MS ? slot.recentCrashes + 1 : 1;
    // The first replacement is immediate; a worker that keeps dying backs off up to 5s.
    const delay = Math.min(MAX_RESTART_DELAY_MS, slot.recentCrashes <= 1 ? 0 : 100 * 2 ** (slot.recentCrashes - 2));
    this.opts.logger.error({ slot: slot.index, worker: slot.workerId, code, restart_in_ms: delay }, 'worker exited unexpectedly; replacing it');
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = undefined;
      if (this.stopping) return;
      this.spawn(slot).catch((err) => this.opts.logger.error({ err, slot: slot.index }, 'replacement worker failed to start'));
    }, delay);
  }
}
