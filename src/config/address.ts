import net from 'node:net';

export interface SocketAddress {
  readonly host: string;
  readonly port: number;
}

const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$/;

/** Parses "host:port" or "[v6]:port"; null when malformed. */
export function parseAddress(value: string): SocketAddress | null {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(value) ?? /^([^:[\]]+):(\d{1,5})$/.exec(value);
  if (!m) return null;
  const host = m[1];
  const port = Number(m[2]);
  if (port > 65535) return null;
  if (value.startsWith('[') ? net.isIPv6(host) : net.isIPv4(host) || HOSTNAME.test(host)) return { host, port };
  return null;
}

export function formatAddress(a: SocketAddress): string {
  return net.isIPv6(a.host) ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
