/** SOFA Bolt as an RpcProtocol. */
import { BoltCmd, BoltProtocolError, BoltStatus, BoltType, boltResponse, decodeBoltFrame, isResponse, parseHeaderMap, setRequestId, type BoltFrame } from '../../codecs/bolt/frame.ts';
import type { RpcFailure, RpcProtocol } from './protocol.ts';

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
  isResponse,
  heartbeatReply: (f) => (f.cmdCode === BoltCmd.HEARTBEAT ? boltResponse(f, BoltStatus.SUCCESS, { heartbeat: true }) : undefined),
  kind(f) {
    if (isResponse(f)) return 'ignore';
    if (f.cmdCode === BoltCmd.HEARTBEAT) return 'heartbeat';
    return f.type === BoltType.ONEWAY ? 'oneway' : 'request';
  },
  call(f) {
    const headers = parseHeaderMap(f.header);
    const lower = new Map<string, string>();
    for (const [k, v] of headers) lower.set(k.toLowerCase(), v);
    return { protocol: 'bolt', service: headers.get('service') ?? headers.get('sofa_head_target_service') ?? '', method: headers.get('sofa_head_method_name'), header: (n) => lower.get(n) };
  },
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
