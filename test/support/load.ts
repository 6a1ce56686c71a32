/** Bounded load loops for tests that change a running proxy underneath its clients. */
import net from 'node:net';

export interface LoopCounts {
  ok: number;
  refused: number;
  failed: number;
  /** The first few errors, for the failure message. */
  errors: string[];
}

/** Runs `once` back to back until stopped (or `max` times), counting outcomes. */
export function loop(once: () => Promise<void>, max = 500_000): { counts: LoopCounts; stop: () => Promise<void> } {
  const counts: LoopCounts = { ok: 0, refused: 0, failed: 0, errors: [] };
  let running = true;
  const done = (async () => {
    for (let i = 0; running && i < max; i++) {
      try {
        await once();
        counts.ok++;
      } catch (err) {
        const e = err as Error & { code?: string; cause?: { code?: string } };
        const code = e.code ?? e.cause?.code ?? '';
        if (code === 'ECONNREFUSED') counts.refused++;
        else counts.failed++;
        if (counts.errors.length < 5) counts.errors.push(`${code} ${e.message}`);
      }
    }
  })();
  return {
    counts,
    stop: async () => {
      running = false;
      await done;
    },
  };
}

/** The counts of several loops added up (the first few errors of all). */
export function totalOf(loops: readonly { counts: LoopCounts }[]): LoopCounts {
  const total: LoopCounts = { ok: 0, refused: 0, failed: 0, errors: [] };
  for (const { counts } of loops) {
    total.ok += counts.ok;
    total.refused += counts.refused;
    total.failed += counts.failed;
    total.errors.push(...counts.errors.slice(0, 5 - total.errors.length));
  }
  return total;
}

/** One fresh TCP connection: sends "ping", waits for it back, closes. */
export function tcpEcho(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error('tcp echo timed out'));
    }, 5_000);
    s.on('connect', () => s.write('ping'));
    s.on('data', (d) => {
      got += d;
      if (got === 'ping') {
        clearTimeout(timer);
        s.end();
        resolve();
      }
    });
    s.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}
