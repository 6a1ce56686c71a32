/**
 * The admin HTTP API (loopback by default). Read-only endpoints answer GET; anything that changes
 * state answers POST only, so a stray GET from a browser or a crawler cannot stop a worker.
 */
import http from 'node:http';
import type net from 'node:net';
import { formatAddress, type SocketAddress } from '../config/address.ts';
import type { Logger } from '../log/logger.ts';

export interface AdminReply {
  status: number;
  body: unknown;
  contentType?: string;
}

export type AdminHandler = (params: Record<string, string>, req: http.IncomingMessage) => AdminReply | Promise<AdminReply>;

interface Route {
  method: 'GET' | 'POST';
  pattern: RegExp;
  handler: AdminHandler;
}

export class AdminServer {
  private readonly routes: Route[] = [];

  /** The listening socket, for handing over to an upgraded process. */
  get listening(): net.Server | undefined {
    return this.server;
  }
  private server: http.Server | undefined;
  private readonly logger: Logger;

  constructor(logger: Logger) {
    this.logger = logger;
  }

  /** `path` may hold `:name` segments, handed to the handler as params. */
  route(method: 'GET' | 'POST', path: string, handler: AdminHandler): this {
    const pattern = new RegExp(`^${path.replace(/:(\w+)/g, '(?<$1>[^/]+)')}$`);
    this.routes.push({ method, pattern, handler });
    return this;
  }

  /** Binds `address`, or adopts a listening socket handed over by the process this one upgrades. */
  listen(address: SocketAddress, inherited?: net.Server): Promise<string> {
    const server = http.createServer((req, res) => void this.handle(req, res));
    server.keepAliveTimeout = 5_000;
    server.headersTimeout = 10_000;
    server.requestTimeout = 30_000;
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      const onListening = () => {
        server.off('error', reject);
        const a = server.address() as net.AddressInfo;
        resolve(formatAddress({ host: a.address, port: a.port }));
      };
      if (inherited) server.listen(inherited, onListening);
      else server.listen({ host: address.host, port: address.port }, onListening);
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.server) return resolve();
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    let reply: AdminReply;
    const matching = this.routes.filter((r) => r.pattern.test(path));
    const route = matching.find((r) => r.method === req.method);
    try {
      if (route) reply = await route.handler({ ...route.pattern.exec(path)!.groups }, req);
      else if (matching.length > 0) reply = { status: 405, body: { error: `use ${matching.map((r) => r.method).join(' or ')}` } };
      else reply = { status: 404, body: { error: 'no such admin endpoint', endpoints: this.routes.map((r) => `${r.method} ${r.pattern.source.slice(1, -1)}`) } };
    } catch (err) {
      this.logger.error({ err, path }, 'admin handler failed');
      reply = { status: 500, body: { error: (err as Error).message } };
    }
    const text = typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body, null, 2) + '\n';
    res.writeHead(reply.status, {
      'content-type': reply.contentType ?? (typeof reply.body === 'string' ? 'text/plain; charset=utf-8' : 'application/json'),
      'cache-control': 'no-store',
    });
    res.end(text);
  }
}
