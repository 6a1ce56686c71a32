/**
 * Reading a TLS ClientHello without terminating TLS (Envoy's tls_inspector): enough of the first
 * handshake message to learn the server name (SNI) and the ALPN protocols offered, so a tcp
 * listener can route by name and pass the bytes on untouched (RFC 8446 §4.1.2, RFC 6066 §3,
 * RFC 7301 §3.1). Hostile input: every length is checked against what is there.
 *
 *   record: 0x16 | version(2) | length(2) | handshake: 0x01 | length(3) | ClientHello…
 *   ClientHello: version(2) random(32) session_id<1> cipher_suites<2> compression<1> extensions<2>
 */

export interface ClientHello {
  /** The host_name of the server_name extension, lower-cased; undefined when absent. */
  serverName: string | undefined;
  /** ALPN protocol names offered, in the client's order. */
  alpn: string[];
}

/** A ClientHello larger than this is refused (real ones are a few hundred bytes; PQ ones ~2 KB). */
const MAX_HELLO = 16 * 1024;

export class NotTls extends Error {}

/** True if the bytes begin like a TLS handshake record (or could, when too few to tell). */
export function looksLikeTls(first: Buffer): boolean {
  return first.length === 0 || (first[0] === 0x16 && (first.length < 2 || first[1] === 0x03));
}

/**
 * Parses a ClientHello from the bytes received so far: the hello, undefined while more bytes are
 * needed, or throws NotTls for bytes that cannot be one.
 */
export function parseClientHello(buf: Buffer): ClientHello | undefined {
  // The handshake message may span several records: gather their payloads first.
  const payload: Buffer[] = [];
  let have = 0;
  let at = 0;
  let need = -1;
  while (need < 0 || have < need) {
    if (buf.length - at < 5) return undefined;
    if (buf[at] !== 0x16 || buf[at + 1] !== 0x03) throw new NotTls('not a TLS handshake record');
    const len = buf.readUInt16BE(at + 3);
    if (len === 0 || len > 16384 + 2048) throw new NotTls('bad TLS record length');
    if (buf.length - at - 5 < len) return undefined;
    payload.push(buf.subarray(at + 5, at + 5 + len));
    have += len;
    at += 5 + len;
    if (need < 0 && have >= 4) {
      const hs = payload.length === 1 ? payload[0] : Buffer.concat(payload);
      if (hs[0] !== 0x01) throw new NotTls('not a ClientHello');
      need = 4 + ((hs[1] << 16) | (hs[2] << 8) | hs[3]);
      if (need > MAX_HELLO) throw new NotTls('ClientHello too large');
    }
  }
  const hs = payload.length === 1 ? payload[0] : Buffer.concat(payload);
  return parseHello(hs.subarray(4, need));
}

function parseHello(h: Buffer): ClientHello {
  const out: ClientHello = { serverName: undefined, alpn: [] };
  let p = 2 + 32; // version, random
  const need = (n: number) => {
    if (p + n > h.length) throw new NotTls('truncated ClientHello');
  };
  need(1);
  p += 1 + h[p]; // session id
  need(2);
  p += 2 + h.readUInt16BE(p); // cipher suites
  need(1);
  p += 1 + h[p]; // compression methods
  if (p === h.length) return out; // no extensions
  need(2);
  const end = p + 2 + h.readUInt16BE(p);
  p += 2;
  if (end > h.length) throw new NotTls('truncated extensions');
  while (p + 4 <= end) {
    const type = h.readUInt16BE(p);
    const len = h.readUInt16BE(p + 2);
    const start = p + 4;
    p = start + len;
    if (p > end) throw new NotTls('truncated extension');
    if (type === 0 && len >= 2) {
      // server_name: list<2> of { type(1) = 0 host_name, name<2> }
      let q = start + 2;
      const listEnd = Math.min(p, start + 2 + h.readUInt16BE(start));
      while (q + 3 <= listEnd) {
        const nameType = h[q];
        const nameLen = h.readUInt16BE(q + 1);
        if (q + 3 + nameLen > listEnd) throw new NotTls('truncated server name');
        if (nameType === 0) {
          out.serverName = h.toString('latin1', q + 3, q + 3 + nameLen).toLowerCase();
          break;
        }
        q += 3 + nameLen;
      }
    } else if (type === 16 && len >= 2) {
      // ALPN: list<2> of name<1>
      let q = start + 2;
      const listEnd = Math.min(p, start + 2 + h.readUInt16BE(start));
      while (q < listEnd) {
        const n = h[q];
        if (q + 1 + n > listEnd) throw new NotTls('truncated ALPN');
        out.alpn.push(h.toString('latin1', q + 1, q + 1 + n));
        q += 1 + n;
      }
    }
  }
  return out;
}

/** A server name matches exact names and single-label wildcards (*.example.com matches a.example.com). */
export function serverNameMatches(pattern: string, name: string): boolean {
  const p = pattern.toLowerCase();
  if (!p.startsWith('*.')) return p === name;
  const suffix = p.slice(1);
  return name.endsWith(suffix) && name.length > suffix.length && !name.slice(0, -suffix.length).includes('.');
}

/**
 * Reads a connection's first bytes until its ClientHello is whole (or `timeoutMs`), then hands over
 * the socket (paused) and every byte read: `hello` is undefined when the bytes are not TLS or the
 * client said too little in time.
 */
export function sniffClientHello(socket: import('node:net').Socket, timeoutMs: number, done: (hello: ClientHello | undefined, bytes: Buffer) => void): void {
  let seen: Buffer = Buffer.alloc(0);
  let finished = false;
  const finish = (hello: ClientHello | undefined) => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('close', onClose);
    socket.pause();
    done(hello, seen);
  };
  const onData = (chunk: Buffer) => {
    seen = seen.length ? Buffer.concat([seen, chunk]) : chunk;
    try {
      const hello = parseClientHello(seen);
      if (hello) finish(hello);
      else if (seen.length > MAX_HELLO + 1024) finish(undefined);
    } catch (err) {
      if (!(err instanceof NotTls)) throw err;
      finish(undefined);
    }
  };
  const onClose = () => finish(undefined);
  const timer = setTimeout(() => finish(undefined), timeoutMs);
  socket.on('data', onData);
  socket.once('close', onClose);
  socket.on('error', ignoreError);
  socket.resume();
}

/**
 * The listener that stays on the socket after detection: a function of the module, not a closure
 * of this call, which would keep the whole detection scope (bytes read, timer, callbacks) alive
 * for the connection's life (~0.8 KB per idle connection, measured).
 */
function ignoreError(): void {}
