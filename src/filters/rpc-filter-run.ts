/**
 * Runs one RPC call's filters (Bolt, Dubbo) before it is routed upstream: each filter's onRequest
 * in order; 'stop' waits for continueCall() (a delay, an async check); sendLocalReply answers the
 * call with the protocol's own error response and ends it here.
 */
import type { Logger } from '../log/logger.ts';
import type { BuiltRpcFilter, RpcCallInfo, RpcFilter, RpcFilterCallbacks, RpcLocalReply } from './api.ts';

export interface RpcFilterHost {
  /** Every filter let the call through: route it. */
  proceed(): void;
  /** A filter answered. */
  reply(r: RpcLocalReply): void;
}

export class RpcFilterRun implements RpcFilterCallbacks {
  readonly logger: Logger;
  private readonly call: RpcCallInfo;
  private readonly host: RpcFilterHost;
  private readonly filters: RpcFilter[];
  private waitingOn = -1;
  private done = false;

  constructor(built: readonly BuiltRpcFilter[], call: RpcCallInfo, host: RpcFilterHost, logger: Logger) {
    this.call = call;
    this.host = host;
    this.logger = logger;
    this.filters = built.map((b) => b.create(this));
  }

  start(): void {
    this.run(0);
  }

  private run(from: number): void {
    for (let i = from; i < this.filters.length; i++) {
      const status = this.filters[i].onRequest(this.call);
      if (this.done) return;
      if (status === 'stop') {
        this.waitingOn = i;
        return;
      }
    }
    this.done = true;
    this.host.proceed();
  }

  continueCall(): void {
    if (this.done || this.waitingOn < 0) return;
    const next = this.waitingOn + 1;
    this.waitingOn = -1;
    this.run(next);
  }

  sendLocalReply(reply: RpcLocalReply): void {
    if (this.done) return;
    this.done = true;
    this.host.reply(reply);
  }

  /** The call ended (answered, or its client went away). */
  destroy(): void {
    this.done = true;
    for (const f of this.filters) {
      try {
        f.onDestroy?.();
      } catch (err) {
        this.logger.error({ err }, 'a filter failed in onDestroy');
      }
    }
  }
}
