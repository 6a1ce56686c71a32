/**
 * Entries by a numeric id that rises as a connection hands ids out: the open streams of an HTTP/2
 * connection (ids of one side rise by two), the calls in flight on a multiplexed RPC connection
 * (request ids rise by one).
 *
 * Why not a Map: such a table sees an insert and a delete per request, and a Map reallocates its
 * hash table every few dozen of them (in a heap profile of the HTTP/2 proxy, Map set/delete were
 * 240 bytes per request, 7% of all it allocated) and hashes every lookup. The ids in use at a
 * time sit in a short run, so a ring indexed by id (divided by the step) finds them with one array
 * load. An id whose slot an older entry still holds goes to a Map: a long-lived stream, or more
 * entries in flight than slots, which doubles the ring (up to MAX_SLOTS) so that the Map stays for
 * the rare long-lived entry (an RPC connection with 128 calls in flight sent half of them through
 * the Map with a fixed 64).
 */
const MIN_SLOTS = 64;
const MAX_SLOTS = 1024;

export class IdTable<T> {
  private readonly shift: number;
  private ids = new Array<number>(MIN_SLOTS).fill(-1);
  private slots = new Array<T | undefined>(MIN_SLOTS).fill(undefined);
  /** ids.length - 1. */
  private mask = MIN_SLOTS - 1;
  private overflow: Map<number, T> | undefined;
  /** Entries held. */
  size = 0;

  /** `step`: how far apart consecutive ids are (HTTP/2: 2). */
  constructor(step: 1 | 2 = 1) {
    this.shift = step === 2 ? 1 : 0;
  }

  get(id: number): T | undefined {
    const i = (id >>> this.shift) & this.mask;
    if (this.ids[i] === id) return this.slots[i];
    return this.overflow === undefined ? undefined : this.overflow.get(id);
  }

  has(id: number): boolean {
    return this.ids[(id >>> this.shift) & this.mask] === id || (this.overflow !== undefined && this.overflow.has(id));
  }

  /** Adds an entry for an id not in the table. */
  set(id: number, value: T): void {
    if (this.ids[(id >>> this.shift) & this.mask] !== -1 && this.size >= this.ids.length >> 1 && this.ids.length < MAX_SLOTS) this.grow();
    this.place(id, value);
    this.size++;
  }

  /** Twice the slots: entries of distinct slots stay apart; those of the Map move in where they can. */
  private grow(): void {
    const { ids, slots, overflow } = this;
    const n = ids.length * 2;
    this.ids = new Array<number>(n).fill(-1);
    this.slots = new Array<T | undefined>(n).fill(undefined);
    this.mask = n - 1;
    this.overflow = undefined;
    for (let i = 0; i < ids.length; i++) if (ids[i] !== -1) this.place(ids[i], slots[i] as T);
    if (overflow !== undefined) for (const [id, v] of overflow) this.place(id, v);
  }

  private place(id: number, value: T): void {
    const i = (id >>> this.shift) & this.mask;
    if (this.ids[i] === -1) {
      this.ids[i] = id;
      this.slots[i] = value;
    } else (this.overflow ??= new Map()).set(id, value);
  }

  /** Removes the entry of `id`; false if there was none. */
  delete(id: number): boolean {
    const i = (id >>> this.shift) & this.mask;
    if (this.ids[i] === id) {
      this.ids[i] = -1;
      this.slots[i] = undefined;
    } else if (this.overflow === undefined || !this.overflow.delete(id)) {
      return false;
    }
    this.size--;
    return true;
  }

  /** The entries, as a new array (safe to change the table while walking it). */
  values(): T[] {
    const out: T[] = [];
    if (this.size === 0) return out;
    for (let i = 0; i < this.ids.length; i++) if (this.ids[i] !== -1) out.push(this.slots[i] as T);
    if (this.overflow !== undefined) for (const v of this.overflow.values()) out.push(v);
    return out;
  }

  clear(): void {
    this.ids.fill(-1);
    this.slots.fill(undefined);
    this.overflow = undefined;
    this.size = 0;
  }
}
