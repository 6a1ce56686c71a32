/**
 * The HPACK static table (RFC 7541 Appendix A): 61 fixed entries every peer knows, indices 1–61.
 * Dynamic table indices start right after it (62 is the newest dynamic entry).
 *
 * The encoder asks one question per header field — "what does the static table know about this
 * name?" — so the lookup is a single Map hit that answers both "lowest index with this name" and
 * "index of this exact name/value pair", without building a name+value key string.
 */

/** Entries as [name, value]; index i (1-based) is STATIC_TABLE[i - 1]. */
export const STATIC_TABLE: readonly (readonly [string, string])[] = [
  [':authority', ''],
  [':method', 'GET'],
  [':method', 'POST'],
  [':path', '/'],
  [':path', '/index.html'],
  [':scheme', 'http'],
  [':scheme', 'https'],
  [':status', '200'],
  [':status', '204'],
  [':status', '206'],
  [':status', '304'],
  [':status', '400'],
  [':status', '404'],
  [':status', '500'],
  ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'],
  ['accept-language', ''],
  ['accept-ranges', ''],
  ['accept', ''],
  ['access-control-allow-origin', ''],
  ['age', ''],
  ['allow', ''],
  ['authorization', ''],
  ['cache-control', ''],
  ['content-disposition', ''],
  ['content-encoding', ''],
  ['content-language', ''],
  ['content-length', ''],
  ['content-location', ''],
  ['content-range', ''],
  ['content-type', ''],
  ['cookie', ''],
  ['date', ''],
  ['etag', ''],
  ['expect', ''],
  ['expires', ''],
  ['from', ''],
  ['host', ''],
  ['if-match', ''],
  ['if-modified-since', ''],
  ['if-none-match', ''],
  ['if-range', ''],
  ['if-unmodified-since', ''],
  ['last-modified', ''],
  ['link', ''],
  ['location', ''],
  ['max-forwards', ''],
  ['proxy-authenticate', ''],
  ['proxy-authorization', ''],
  ['range', ''],
  ['referer', ''],
  ['refresh', ''],
  ['retry-after', ''],
  ['server', ''],
  ['set-cookie', ''],
  ['strict-transport-security', ''],
  ['transfer-encoding', ''],
  ['user-agent', ''],
  ['vary', ''],
  ['via', ''],
  ['www-authenticate', ''],
];

export const STATIC_TABLE_LENGTH = 61;

/** Names and values by 1-based index (slot 0 unused): the decoder reads these on every indexed field. */
export const STATIC_NAMES: readonly string[] = ['', ...STATIC_TABLE.map((e) => e[0])];
export const STATIC_VALUES: readonly string[] = ['', ...STATIC_TABLE.map((e) => e[1])];

export interface StaticNameEntry {
  /** Lowest index carrying this name (for a literal with an indexed name). */
  readonly index: number;
  /** Index of each exact name/value pair (an empty value is a pair too: `accept: ""` is index 19). */
  readonly values: ReadonlyMap<string, number>;
}

function buildNameIndex(): ReadonlyMap<string, StaticNameEntry> {
  const byName = new Map<string, { index: number; values: Map<string, number> }>();
  for (let i = 0; i < STATIC_TABLE.length; i++) {
    const [name, value] = STATIC_TABLE[i];
    let entry = byName.get(name);
    if (entry === undefined) byName.set(name, (entry = { index: i + 1, values: new Map() }));
    entry.values.set(value, i + 1);
  }
  return byName;
}

/** name → its static entries. One Map lookup per header field on the encoder's path. */
export const STATIC_BY_NAME: ReadonlyMap<string, StaticNameEntry> = buildNameIndex();
