/**
 * Profiles of worker threads for performance work: `--cpu-prof` does not write a worker's
 * profile when the worker ends with process.exit(), so each worker profiles itself through the
 * inspector and writes its files when it stops (drain, SIGTERM):
 *   SHUTTLE_CPU_PROFILE_DIR=dir    worker-<id>.cpuprofile (Chrome DevTools, speedscope)
 *   SHUTTLE_HEAP_PROFILE_DIR=dir   worker-<id>.heapprofile: sampled allocations by stack
 *   SHUTTLE_HEAP_LIVE_AFTER_MS=n   (with the above) worker-<id>.live.heapprofile, written n ms
 *                                  after start: the objects alive then, by the stack that made
 *                                  them (what idle connections hold: bench/idle-profile.ts)
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';

export function startProfiler(workerId: number): (() => Promise<void>) | undefined {
  const cpuDir = process.env.SHUTTLE_CPU_PROFILE_DIR;
  const heapDir = process.env.SHUTTLE_HEAP_PROFILE_DIR;
  if (!cpuDir && !heapDir) return undefined;
  const session = new Session();
  session.connect();
  if (cpuDir) {
    session.post('Profiler.enable');
    session.post('Profiler.setSamplingInterval', { interval: 100 });
    session.post('Profiler.start');
  }
  if (heapDir) {
    session.post('HeapProfiler.enable');
    const liveAfterMs = Number(process.env.SHUTTLE_HEAP_LIVE_AFTER_MS ?? 0);
    const live = liveAfterMs > 0;
    session.post('HeapProfiler.startSampling', { samplingInterval: live ? 256 : 4096, includeObjectsCollectedByMajorGC: !live, includeObjectsCollectedByMinorGC: !live });
    if (live) {
      setTimeout(() => {
        session.post('HeapProfiler.stopSampling', (err, r) => {
          if (!err) writeFileSync(join(heapDir, `worker-${workerId}.live.heapprofile`), JSON.stringify((r as { profile: unknown }).profile));
        });
      }, liveAfterMs).unref();
    }
  }
  const post = (method: string) => new Promise<unknown>((resolve) => session.post(method, (err, result) => resolve(err ? undefined : result)));
  return async () => {
    if (cpuDir) {
      const r = (await post('Profiler.stop')) as { profile: unknown } | undefined;
      if (r) writeFileSync(join(cpuDir, `worker-${workerId}.cpuprofile`), JSON.stringify(r.profile));
    }
    if (heapDir) {
      const r = (await post('HeapProfiler.stopSampling')) as { profile: unknown } | undefined;
      if (r) writeFileSync(join(heapDir, `worker-${workerId}.heapprofile`), JSON.stringify(r.profile));
    }
    session.disconnect();
  };
}
