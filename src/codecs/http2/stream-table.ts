/**
 * The open streams of one HTTP/2 connection, by id.
 *
 * Why not a Map: a busy connection opens and closes a stream per request, and a Map that sees an
 * insert and a delete per request reallocates its hash table every few dozen of them (in a heap
 * profile of the proxy, Map set/delete were 240 bytes per request, 7% of all it allocated), and
 * hashes every lookup. Stream ids of one side rise by two, so the streams open at a time sit in
 * a short run of ids: a ring indexed by id/2 finds them with one array load. An id whose slot is
 * still held by an older stream (a long-lived one, or more open streams than slots) goes to a Map.
 */
const SLOTS = 64;

export class StreamTable<T extends { readonly id: number }> {
  private readonly slots: (T | undefined)[] = new Array<T | undefined>(SLOTS).fill(undefined);
  private overflow: Map<number, T> | undefined;
  /** Open streams. */
  size = 0;

  get(id: number): T | undefined {
    const s = this.slots[(id >>> 1) & (SLOTS - 1)];
    if (s !== undefined && s.id === id) return s;
    return this.overflow === undefined ? undefined : this.overflow.get(id);
  }

  /** Adds a stream whose id is not in the table. */
  add(stream: T): void {
    const i = (stream.id >>> 1) & (SLOTS - 1);
    if (this.slots[i] === undefined) this.slots[i] = stream;
    else (this.overflow ??= new Map()).set(stream.id, stream);
    this.size++;
  }

  /** Removes this stream (not another of the same id); false if it was not there. */
  delete(stream: T): boolean {
    const i = (stream.id >>> 1) & (SLOTS - 1);
    if (this.slots[i] === stream) {
      this.slots[i] = undefined;
    } else if (this.overflow === undefined || this.overflow.get(stream.id) !== stream) {
      return false;
    } else {
      this.overflow.delete(stream.id);
    }
    this.size--;
    return true;
  }

  /** The open streams, as a new array (safe to change the table while walking it). */
  values(): T[] {
    const out: T[] = [];
    if (this.size === 0) return out;
    for (const s of this.slots) if (s !== undefined) out.push(s);
    if (this.overflow !== undefined) for (const s of this.overflow.values()) out.push(s);
    return out;
  }
}
