/**
 * Where a config problem is in the file: a problem's path (`clusters[1].hosts[0]`) is walked
 * through the YAML document's nodes, which keep their offsets, to a line and column. A path that
 * leads to a missing field stops at the nearest node that exists (a required field is reported
 * where its parent starts). JSON files are located the same way (JSON is YAML).
 */
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node } from 'yaml';

export interface Position {
  line: number;
  column: number;
}

/** "clusters[1].hosts[0].address" → ["clusters", 1, "hosts", 0, "address"]. */
export function parsePath(path: string): (string | number)[] {
  const out: (string | number)[] = [];
  for (const part of path.match(/[^.[\]]+|\[\d+\]/g) ?? []) out.push(part.startsWith('[') ? Number(part.slice(1, -1)) : part);
  return out;
}

/** Returns a function from a problem's path to its position in `text` (1-based line and column). */
export function locator(text: string): (path: string) => Position | undefined {
  const lineCounter = new LineCounter();
  let doc: ReturnType<typeof parseDocument> | undefined;
  try {
    doc = parseDocument(text, { lineCounter, uniqueKeys: false });
  } catch {
    return () => undefined;
  }
  const at = (offset: number | undefined): Position | undefined => {
    if (offset === undefined) return undefined;
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };
  return (path) => {
    let node: unknown = doc!.contents;
    let found: number | undefined = (node as Node | null)?.range?.[0];
    for (const key of parsePath(path)) {
      if (isMap(node)) {
        const pair = node.items.find((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === String(key));
        if (!pair) break;
        // A field is shown where its name is (an unknown field, a bad value on the same line).
        found = (pair.key as Node | null)?.range?.[0] ?? found;
        node = pair.value;
      } else if (isSeq(node) && typeof key === 'number' && key < node.items.length) {
        node = node.items[key];
        found = (node as Node | null)?.range?.[0] ?? found;
      } else {
        break;
      }
    }
    return at(found);
  };
}
