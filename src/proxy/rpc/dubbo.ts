/**
 * Dubbo as an RpcProtocol. Upstream ids are the proxy's own u32 counters (in the u64 field);
 * a client's 64-bit id is restored on the way back.
 */
import { DubboProtocolError, DubboStatus, decodeDubboFrame, dubboResponse, readInvocation, setDubboRequestId, type DubboFrame } from '../../codecs/dubbo/frame.ts';
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

export const dubboProtocol: RpcProtocol<DubboFrame> = {
  name: 'dubbo',
  decode: decodeDubboFrame,
  requestId: (f) => Number(f.requestId & 0xffffffffn),
  setRequestId: (f, id) => setDubboRequestId(f, BigInt(id)),
  raw: (f) => f.raw,
  isResponse: (f) => !f.isRequest,
  heartbeatReply: (f) => (f.event ? dubboResponse(f, DubboStatus.OK, { heartbeat: true }) : undefined),
  kind(f) {
    if (!f.isRequest) return 'ignore';
    if (f.event) return 'heartbeat';
    return f.twoWay ? 'request' : 'oneway';
  },
  call(f) {
    const inv = readInvocation(f);
    const lower = new Map<string, string>();
    const attachments = inv.attachments;
    for (const k of Object.keys(attachments)) lower.set(k.toLowerCase(), attachments[k]);
    if (inv.version) lower.set('version', inv.version);
    return { protocol: 'dubbo', service: inv.service, method: inv.method, header: (n) => lower.get(n) };
  },
  // A caller's timeout attachment, in ms; nonsense or beyond a timer's range reads as none.
  timeoutOf: (_f, call) => {
    const ms = Number(call.header('timeout') ?? 0);
    return Number.isInteger(ms) && ms > 0 && ms <= 0x7fffffff ? ms : 0;
  },
  clientId: (f) => f.requestId,
  heartbeatAck: (f) => dubboResponse(f, DubboStatus.OK, { heartbeat: true }),
  errorReply: (f, clientId, failure, message) => dubboResponse({ ...f, requestId: clientId as bigint }, STATUS[failure], { message }),
  restoreId(resp, clientId) {
    setDubboRequestId(resp, clientId as bigint);
    return resp.raw;
  },
  statusOf: (f) => f.status,
  okStatus: DubboStatus.OK,
  isProtocolError: (err): err is DubboProtocolError => err instanceof DubboProtocolError,
};
