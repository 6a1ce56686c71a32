/**
 * Dubbo as an RpcProtocol. Upstream ids are the proxy's own u32 counters (in the u64 field);
 * a client's 64-bit id is restored on the way back.
 */
import { DubboProtocolError, DubboStatus, decodeDubboFrame, dubboClientId, dubboRequestIdLow, dubboResponse, readInvocation, restoreDubboId, setDubboRequestIdU32, type DubboFrame, type DubboInvocation } from '../../codecs/dubbo/frame.ts';
import type { RpcCall } from '../../router/rpc-router.ts';
import type { RpcFailure, RpcProtocol } from './protocol.ts';

const STATUS: Record<RpcFailure, number> = {
  no_route: DubboStatus.SERVICE_NOT_FOUND,
  no_host: DubboStatus.SERVER_ERROR,
  timeout: DubboStatus.SERVER_TIMEOUT,
  upstream_lost: DubboStatus.SERVICE_ERROR,
  fault: DubboStatus.SERVICE_ERROR,
  rate_limited: DubboStatus.SERVER_THREADPOOL_EXHAUSTED,
  denied: DubboStatus.SERVICE_ERROR,
  overflow: DubboStatus.SERVER_THREADPOOL_EXHAUSTED,
};

/**
 * A call's routing view: its attachments by lower-cased name, with `version` from the invocation.
 * Why not a Map made per call: attachment names are nearly always lower-case already (`timeout`,
 * `path`, `interface`, …), and the timeout is looked up on every call; the Map and its entries were
 * ~500 bytes a call. It is made only for a call with a name in another case.
 */
class DubboCall implements RpcCall {
  readonly protocol = 'dubbo';
  readonly service: string;
  readonly method: string;
  private readonly inv: DubboInvocation;
  private lower: Map<string, string> | undefined;

  constructor(inv: DubboInvocation) {
    this.inv = inv;
    this.service = inv.service;
    this.method = inv.method;
    const attachments = inv.attachments;
    for (const k in attachments) {
      if (hasUpperCase(k)) {
        this.lower = new Map();
        for (const name of Object.keys(attachments)) this.lower.set(name.toLowerCase(), attachments[name]);
        break;
      }
    }
  }

  header(name: string): string | undefined {
    const inv = this.inv;
    if (name === 'version' && inv.version) return inv.version;
    if (this.lower !== undefined) return this.lower.get(name);
    return Object.hasOwn(inv.attachments, name) ? inv.attachments[name] : undefined;
  }
}

function hasUpperCase(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if ((c >= 65 && c <= 90) || c > 127) return true;
  }
  return false;
}

export const dubboProtocol: RpcProtocol<DubboFrame> = {
  name: 'dubbo',
  decode: decodeDubboFrame,
  requestId: dubboRequestIdLow,
  setRequestId: setDubboRequestIdU32,
  raw: (f) => f.raw,
  setRaw(f, bytes) {
    f.raw = bytes;
  },
  isResponse: (f) => !f.isRequest,
  heartbeatReply: (f) => (f.event ? dubboResponse(f, DubboStatus.OK, { heartbeat: true }) : undefined),
  kind(f) {
    if (!f.isRequest) return 'ignore';
    if (f.event) return 'heartbeat';
    return f.twoWay ? 'request' : 'oneway';
  },
  call: (f) => new DubboCall(readInvocation(f)),
  // A caller's timeout attachment, in ms; nonsense or beyond a timer's range reads as none.
  timeoutOf: (_f, call) => {
    const ms = Number(call.header('timeout') ?? 0);
    return Number.isInteger(ms) && ms > 0 && ms <= 0x7fffffff ? ms : 0;
  },
  clientId: dubboClientId,
  heartbeatAck: (f) => dubboResponse(f, DubboStatus.OK, { heartbeat: true }),
  errorReply: (f, clientId, failure, message) => dubboResponse({ ...f, requestId: BigInt(clientId as number | bigint) }, STATUS[failure], { message }),
  restoreId(resp, clientId) {
    restoreDubboId(resp, clientId as number | bigint);
    return resp.raw;
  },
  statusOf: (f) => f.status,
  okStatus: DubboStatus.OK,
  isProtocolError: (err): err is DubboProtocolError => err instanceof DubboProtocolError,
};
