/**
 * A protocol-neutral message head: the pseudo-headers as fields of their own, the rest as a flat
 * [name, value, name, value, …] list in arrival order.
 *
 * Built cheaply from a parsed HTTP/1 head (the parser's own field array is reused, names keep
 * their case for HTTP/1 on the wire) or from an HTTP/2 header block (names are lower-case there).
 * Framing is never a field: `contentLength` is what the decoder framed, and encoders write the
 * framing of their own protocol from it. For the same reason every encoder skips, by name, the
 * fields that describe one connection (Host, Connection, Keep-Alive, Proxy-Connection, TE,
 * Transfer-Encoding, Upgrade, Content-Length: see CONNECTION_FIELDS), so a decoder may leave them
 * in the list instead of copying it to take them out.
 */

/** Lower-cased names that no encoder copies from the field list (RFC 9110 §7.6.1, RFC 9113 §8.2.2). */
export const CONNECTION_FIELDS: ReadonlySet<string> = new Set([
  'host', 'connection', 'keep-alive', 'proxy-connection', 'te', 'transfer-encoding', 'upgrade', 'content-length',
]);

/** Name lengths that can need a look (lower-casing) when a list is walked; others pass unlowered. */
export function nameLengths(names: Iterable<string>): Uint8Array {
  const t = new Uint8Array(64);
  for (const n of names) t[n.length] = 1;
  return t;
}

/**
 * True if `name` (any case) is a connection field. Called for every field an HTTP/1 encoder
 * writes, so it decides on the length first and compares the usual spellings before lower-casing.
 */
export function isConnectionField(name: string): boolean {
  switch (name.length) {
    case 2: return sameName(name, 'te');
    case 4: return name === 'Host' || sameName(name, 'host');
    case 7: return name === 'Upgrade' || sameName(name, 'upgrade');
    case 10: return name === 'Connection' || name === 'Keep-Alive' || sameName(name, 'connection') || sameName(name, 'keep-alive');
    case 14: return name === 'Content-Length' || sameName(name, 'content-length');
    case 16: return name === 'Proxy-Connection' || sameName(name, 'proxy-connection');
    case 17: return name === 'Transfer-Encoding' || sameName(name, 'transfer-encoding');
    default: return false;
  }
}

/** `name` (any case) equals `lower` (lower-case), without allocating in the common cases. */
export function sameName(name: string, lower: string): boolean {
  return name.length === lower.length && (name === lower || name.toLowerCase() === lower);
}

export class HeaderMap {
  /** Requests: `:method`, `:path` (origin-form target, with the query), `:authority`, `:scheme`. */
  method = '';
  path = '';
  authority = '';
  scheme = '';
  /** Responses: `:status`. */
  status = 0;
  /** Body length the decoder framed (-1: unknown, delimited by the stream's end). */
  contentLength = -1;
  /**
   * HTTP/1 only: the protocol a request asks to switch to (Upgrade with Connection: upgrade), or
   * the one a 101 response switches to. After a 101, a stream carries the tunnel's raw bytes.
   */
  upgrade = '';
  /** Regular fields, [name, value, …]. May hold connection fields: encoders skip them. */
  fields: string[];

  constructor(fields: string[] = []) {
    this.fields = fields;
  }

  static request(method: string, path: string, authority: string, scheme = 'http', fields: string[] = []): HeaderMap {
    const h = new HeaderMap(fields);
    h.method = method;
    h.path = path;
    h.authority = authority;
    h.scheme = scheme;
    return h;
  }

  static response(status: number, fields: string[] = []): HeaderMap {
    const h = new HeaderMap(fields);
    h.status = status;
    return h;
  }

  /**
   * Values of a lower-case name joined with "," (RFC 9110 §5.3), or undefined when absent.
   * Pseudo-header names (":authority", …) read the pseudo-headers.
   */
  get(lower: string): string | undefined {
    if (lower.charCodeAt(0) === 58 /* : */) return this.pseudo(lower);
    const f = this.fields;
    let found: string | undefined;
    for (let i = 0; i < f.length; i += 2) {
      if (sameName(f[i], lower)) found = found === undefined ? f[i + 1] : `${found},${f[i + 1]}`;
    }
    return found;
  }

  has(lower: string): boolean {
    const f = this.fields;
    for (let i = 0; i < f.length; i += 2) if (sameName(f[i], lower)) return true;
    return false;
  }

  /** Appends a field (another value of the same name may already be there). */
  add(name: string, value: string): void {
    this.fields.push(name, value);
  }

  /** Replaces every field of this name with one. */
  set(name: string, value: string): void {
    this.remove(name.toLowerCase());
    this.fields.push(name, value);
  }

  /** Removes every field of a lower-case name; true if there was one. */
  remove(lower: string): boolean {
    const f = this.fields;
    let w = 0;
    for (let r = 0; r < f.length; r += 2) {
      if (sameName(f[r], lower)) continue;
      if (w !== r) {
        f[w] = f[r];
        f[w + 1] = f[r + 1];
      }
      w += 2;
    }
    if (w === f.length) return false;
    f.length = w;
    return true;
  }

  /** Removes every field whose lower-cased name is in `names` (a Connection list, a route's removals). */
  removeAll(names: ReadonlySet<string>): void {
    if (names.size === 0) return;
    const f = this.fields;
    let w = 0;
    for (let r = 0; r < f.length; r += 2) {
      if (names.has(f[r].toLowerCase())) continue;
      if (w !== r) {
        f[w] = f[r];
        f[w + 1] = f[r + 1];
      }
      w += 2;
    }
    f.length = w;
  }

  private pseudo(name: string): string | undefined {
    switch (name) {
      case ':method': return this.method || undefined;
      case ':path': return this.path || undefined;
      case ':authority': return this.authority || undefined;
      case ':scheme': return this.scheme || undefined;
      case ':status': return this.status ? String(this.status) : undefined;
      default: return undefined;
    }
  }
}
