/**
 * The admin HTTP API (loopback by default). Read-only endpoints answer GET; anything that changes
 * state answers POST only, so a stray GET from a browser or a crawler cannot stop a worker.
 *
 * Browsers are the threat to a loopback admin: any web page can make its visitor's browser send
 * requests to 127.0.0.1. So every request must name the admin itself in Host (a DNS-rebinding
 * page sends its own name), a request with an Origin must come from the admin's own origin, and a
 * POST must not look like a form or a `text/plain` beacon (the content types a page may send
 * cross-site without a preflight). curl and the `shuttle` command pass all three as they are.
 */
import http from 'node:http';
import type net from 'node:net';
import { formatAddress, type SocketAddress } from '../config/address.ts';
import { isLoopback } from '../config/schema.ts';
import type { Logger } from '../log/logger.ts';

export interface AdminReply {
  status: number;
  body: unknown;
  contentType?: string;
  /** Extra response headers (the dashboard's content security policy). */
  headers?: Record<string, string>;
}

export type AdminHandler = (params: Record<string, string>, req: http.IncomingMessage) => AdminReply | Promise<AdminReply>;

interface Route {
  method: 'GET' | 'POST';
  path: string;
  pattern: RegExp;
  handler: AdminHandler;
  /** One line for /help. */
  help: string;
}

/** Content types a browser sends cross-site without asking first (a "simple" request). */
const SIMPLE_CONTENT_TYPES = new Set(['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data']);

export class AdminServer {
  private readonly routes: Route[] = [];
  /** Host names (lower-case, no port, IPv6 without brackets) this admin answers to. */
  private allowedHosts = new Set<string>();
  private port = 0;
  private extraHosts: readonly string[];

  /** The listening socket, for handing over to an upgraded process. */
  get listening(): net.Server | undefined {
    return this.server;
  }
  private server: http.Server | undefined;
  private readonly logger: Logger;

  constructor(logger: Logger, opts: { allowedHosts?: readonly string[] } = {}) {
    this.logger = logger;
    this.extraHosts = opts.allowedHosts ?? [];
  }

  /**
   * The host names a request may carry in Host (any port: a request proxied to the admin by one
   * of Shuttle's own listeners keeps that listener's port): the bound address, loopback names
   * when bound to loopback or a wildcard, and admin.allowed_hosts.
   */
  private allowHostsFor(a: net.AddressInfo): void {
    const names = [a.address, ...this.extraHosts];
    if (isLoopback(a.address) || a.address === '::' || a.address === '0.0.0.0') names.push('localhost', '127.0.0.1', '::1');
    this.allowedHosts = new Set(names.map((n) => n.toLowerCase().replace(/^\[|\]$/g, '')));
    this.port = a.port;
  }

  /** admin.allowed_hosts changed in a reload. */
  setAllowedHosts(hosts: readonly string[]): void {
    this.extraHosts = hosts;
    const a = this.server?.address();
    if (a && typeof a === 'object') this.allowHostsFor(a);
  }

  /** Why a request is refused before routing (see the header comment), or undefined. */
  private refusal(req: http.IncomingMessage): string | undefined {
    const host = req.headers.host ?? '';
    const hostname = /^(\[[^\]]*\]|[^:]*)(:\d+)?$/.exec(host)?.[1].toLowerCase().replace(/^\[|\]$/g, '');
    if (hostname === undefined || !this.allowedHosts.has(hostname)) return `Host "${host.slice(0, 100)}" is not this admin's address (add it to admin.allowed_hosts)`;
    // A page the admin serves itself has the admin's origin; every other origin is a foreign page.
    const origin = req.headers.origin;
    if (origin !== undefined) {
      let url: URL | undefined;
      try {
        url = new URL(origin);
      } catch {}
      const sameOrigin = url !== undefined && url.protocol === 'http:' && this.allowedHosts.has(url.hostname.replace(/^\[|\]$/g, '')) && Number(url.port || 80) === this.port;
      if (!sameOrigin) return `cross-origin request from ${origin.slice(0, 100)} refused`;
    }
    if (req.headers['sec-fetch-site'] === 'cross-site') return 'cross-site request refused';
    if (req.method === 'POST') {
      const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
      if (SIMPLE_CONTENT_TYPES.has(type)) return `POST with content-type ${type} refused (send none, or application/json)`;
    }
    return undefined;
  }

  /** `path` may hold `:name` segments, handed to the handler as params; `help` is its line in /help. */
  route(method: 'GET' | 'POST', path: string, handler: AdminHandler, help = ''): this {
    const pattern = new RegExp(`^${path.replace(/:(\w+)/g, '(?<$1>[^/]+)')}$`);
    this.routes.push({ method, path, pattern, handler, help });
    return this;
  }

  /** Every endpoint, in the order registered. */
  endpoints(): { method: string; path: string; help: string }[] {
    return this.routes.map((r) => ({ method: r.method, path: r.path, help: r.help }));
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
        this.allowHostsFor(a);
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
    // HEAD is a GET without the body (node:http leaves the body out).
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    const route = matching.find((r) => r.method === method);
    const refused = this.refusal(req);
    try {
      if (refused) {
        this.logger.warn({ path, method: req.method, host: req.headers.host, origin: req.headers.origin, remote: req.socket.remoteAddress, reason: refused }, 'admin request refused');
        reply = { status: 403, body: { error: refused } };
      } else if (route) reply = await route.handler({ ...route.pattern.exec(path)!.groups }, req);
      else if (matching.length > 0) reply = { status: 405, body: { error: `use ${matching.map((r) => r.method).join(' or ')}` } };
      else reply = { status: 404, body: { error: 'no such admin endpoint (GET /help lists them)', endpoints: this.routes.map((r) => `${r.method} ${r.path}`) } };
    } catch (err) {
      this.logger.error({ err, path }, 'admin handler failed');
      reply = { status: 500, body: { error: (err as Error).message } };
    }
    const text = typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body, null, 2) + '\n';
    res.writeHead(reply.status, {
      'content-type': reply.contentType ?? (typeof reply.body === 'string' ? 'text/plain; charset=utf-8' : 'application/json'),
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      ...reply.headers,
    });
    res.end(text);
  }
}
