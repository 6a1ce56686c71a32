/** SOFA Bolt as an RpcProtocol. */
import { BoltCmd, BoltProtocolError, BoltStatus, BoltType, boltResponse, decodeBoltFrame, isResponse, parseHeaderMap, readRouting, setRequestId, type BoltFrame, type BoltRouting } from '../../codecs/bolt/frame.ts';
import type { RpcCall } from '../../router/rpc-router.ts';
import type { RpcFailure, RpcProtocol } from './protocol.ts';

/** readRouting's answer for the call being made (one at a time: no object per call). */
const routing: BoltRouting = { service: undefined, targetService: undefined, method: undefined };

/**
 * A Bolt call's routing fields. Only service and method are read per call (readRouting, from the
 * frame's bytes: no view of the header block); the whole header map, by lower-cased name, is built
 * the first time a route or filter asks for a header. (Read through the frame, whose bytes are
 * its own by then: see RpcProtocol.keep.)
 */
class BoltCall implements RpcCall {
  readonly protocol = 'bolt';
  readonly service: string;
  readonly method: string | undefined;
  private readonly frame: BoltFrame;
  private lower: Map<string, string> | undefined;

  constructor(frame: BoltFrame) {
    this.frame = frame;
    const r = routing;
    r.service = r.targetService = r.method = undefined;
    readRouting(frame.raw, r, frame.headerAt, frame.contentAt);
    this.service = r.service ?? r.targetService ?? '';
    this.method = r.method;
  }

  header(name: string): string | undefined {
    let lower = this.lower;
    if (lower === undefined) {
      lower = this.lower = new Map();
      for (const [k, v] of parseHeaderMap(this.frame.header)) lower.set(k.toLowerCase(), v);
    }
    return lower.get(name);
  }
}

const STATUS: Record<RpcFailure, number> = {
  no_route: BoltStatus.NO_PROCESSOR,
  no_host: BoltStatus.ERROR_COMM,
  timeout: BoltStatus.TIMEOUT,
  upstream_lost: BoltStatus.CONNECTION_CLOSED,
  fault: BoltStatus.SERVER_EXCEPTION,
  rate_limited: BoltStatus.SERVER_THREADPOOL_BUSY,
  denied: BoltStatus.SERVER_EXCEPTION,
  overflow: BoltStatus.SERVER_THREADPOOL_BUSY,
};

export const boltProtocol: RpcProtocol<BoltFrame> = {
  name: 'bolt',
  decode: decodeBoltFrame,
  requestId: (f) => f.requestId,
  setRequestId,
  raw: (f) => f.raw,
  setRaw(f, bytes) {
    f.raw = bytes;
  },
  isResponse,
  heartbeatReply: (f) => (f.cmdCode === BoltCmd.HEARTBEAT ? boltResponse(f, BoltStatus.SUCCESS, { heartbeat: true }) : undefined),
  kind(f) {
    if (isResponse(f)) return 'ignore';
    if (f.cmdCode === BoltCmd.HEARTBEAT) return 'heartbeat';
    return f.type === BoltType.ONEWAY ? 'oneway' : 'request';
  },
  call: (f) => new BoltCall(f),
  timeoutOf: (f) => (f.timeout > 0 ? f.timeout : 0),
  clientId: (f) => f.requestId,
  heartbeatAck: (f) => boltResponse(f, BoltStatus.SUCCESS, { heartbeat: true }),
  errorReply: (f, clientId, failure, message) => boltResponse({ ...f, requestId: clientId as number }, STATUS[failure], { message }),
  restoreId(resp, clientId) {
    setRequestId(resp, clientId as number);
    return resp.raw;
  },
  statusOf: (f) => f.status,
  okStatus: BoltStatus.SUCCESS,
  isProtocolError: (err): err is BoltProtocolError => err instanceof BoltProtocolError,
};
