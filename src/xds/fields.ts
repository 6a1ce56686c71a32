/**
 * Reading a decoded Envoy message field by field, so that every field Shuttle does not read is
 * found and named: a mapper takes the fields it honours, lists those it may skip without changing
 * traffic (metadata, stat names), and `done()` refuses whatever is left with its exact path.
 */

/** A resource (or bootstrap field) Shuttle cannot honour: its field path and why. */
export class XdsFieldError extends Error {
  readonly path: string;
  readonly reason: string;
  constructor(path: string, reason: string) {
    super(`${path}: ${reason}`);
    this.path = path;
    this.reason = reason;
  }
}

export type Message = Record<string, unknown>;

const isMessage = (v: unknown): v is Message => typeof v === 'object' && v !== null && !Array.isArray(v);

export class Fields {
  readonly path: string;
  private readonly msg: Message;
  private readonly used = new Set<string>(['@type']);

  constructor(msg: unknown, path: string) {
    if (!isMessage(msg)) throw new XdsFieldError(path || '(resource)', 'expected a message');
    this.msg = msg;
    this.path = path;
  }

  at(key: string | number): string {
    return typeof key === 'number' ? `${this.path}[${key}]` : this.path ? `${this.path}.${key}` : key;
  }

  has(key: string): boolean {
    return this.msg[key] !== undefined;
  }

  keys(): string[] {
    return Object.keys(this.msg).filter((k) => this.msg[k] !== undefined && k !== '@type');
  }

  raw(key: string): unknown {
    this.used.add(key);
    return this.msg[key];
  }

  /** Fields that do not change what happens to traffic (names for stats, opaque metadata). */
  skip(...keys: string[]): this {
    for (const k of keys) this.used.add(k);
    return this;
  }

  fail(key: string, reason: string): never {
    throw new XdsFieldError(this.at(key), reason);
  }

  str(key: string): string | undefined {
    const v = this.raw(key);
    if (v === undefined) return undefined;
    if (typeof v !== 'string') this.fail(key, 'expected a string');
    return v;
  }

  requiredStr(key: string): string {
    const v = this.str(key);
    if (v === undefined || v === '') this.fail(key, 'required');
    return v;
  }

  num(key: string): number | undefined {
    const v = this.raw(key);
    if (v === undefined) return undefined;
    const n = typeof v === 'string' ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isFinite(n)) this.fail(key, 'expected a number');
    return n;
  }

  bool(key: string): boolean | undefined {
    const v = this.raw(key);
    if (v === undefined) return undefined;
    if (typeof v !== 'boolean') this.fail(key, 'expected true or false');
    return v;
  }

  /** A google.protobuf.*Value wrapper ({ value }); an absent value is the type's zero. */
  wrapped(key: string): number | undefined {
    if (typeof this.msg[key] === 'number' || typeof this.msg[key] === 'string') return this.num(key); // proto3 JSON (bootstrap files)
    const m = this.message(key);
    if (!m) return undefined;
    const n = m.num('value') ?? 0;
    m.done();
    return n;
  }

  wrappedBool(key: string): boolean | undefined {
    if (typeof this.msg[key] === 'boolean') return this.bool(key); // proto3 JSON (bootstrap files)
    const m = this.message(key);
    if (!m) return undefined;
    const b = m.bool('value') ?? false;
    m.done();
    return b;
  }

  /** A google.protobuf.Duration, in milliseconds. */
  durationMs(key: string): number | undefined {
    const text = this.msg[key];
    if (typeof text === 'string') {
      // proto3 JSON (bootstrap files): "5s", "0.250s"
      this.used.add(key);
      const m = /^(\d{1,12})(\.\d{1,9})?s$/.exec(text);
      if (!m) this.fail(key, 'expected a duration such as "5s" or "0.25s"');
      return Math.round(Number(m[1]) * 1000 + Number(`0${m[2] ?? ''}`) * 1000);
    }
    const m = this.message(key);
    if (!m) return undefined;
    const seconds = m.num('seconds') ?? 0;
    const nanos = m.num('nanos') ?? 0;
    m.done();
    if (seconds < 0 || nanos < 0) this.fail(key, 'a negative duration');
    if (seconds > 315_576_000_000) this.fail(key, 'duration out of range');
    return Math.round(seconds * 1000 + nanos / 1e6);
  }

  message(key: string): Fields | undefined {
    const v = this.raw(key);
    if (v === undefined) return undefined;
    return new Fields(v, this.at(key));
  }

  requiredMessage(key: string): Fields {
    return this.message(key) ?? this.fail(key, 'required');
  }

  list(key: string): Fields[] {
    const v = this.raw(key);
    if (v === undefined) return [];
    if (!Array.isArray(v)) this.fail(key, 'expected a list');
    return v.map((item, i) => new Fields(item, `${this.at(key)}[${i}]`));
  }

  strings(key: string): string[] {
    const v = this.raw(key);
    if (v === undefined) return [];
    if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) this.fail(key, 'expected a list of strings');
    return v as string[];
  }

  /** Paths of the fields neither read nor skipped. */
  unread(): string[] {
    return this.keys().filter((k) => !this.used.has(k)).map((k) => this.at(k));
  }

  /** Refuses every field that was neither read nor skipped. */
  done(): void {
    for (const k of this.keys()) if (!this.used.has(k)) throw new XdsFieldError(this.at(k), 'not supported by Shuttle (yet): refused rather than ignored');
  }
}
