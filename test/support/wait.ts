/** Polls `read` until `pred` holds, for state that changes without an event to wait on (shared tables). */
export async function eventually<T>(read: () => Promise<T>, pred: (v: T) => boolean, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await read();
    if (pred(v)) return v;
    if (Date.now() > deadline) throw new Error(`condition not met in ${timeoutMs}ms; last value: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
