/**
 * CPU profiles of worker threads for performance work: `--cpu-prof` does not write a worker's
 * profile when the worker ends with process.exit(), so with SHUTTLE_CPU_PROFILE_DIR set each worker
 * profiles itself through the inspector and writes `worker-<id>.cpuprofile` there when it stops
 * (drain, SIGTERM). Open the files in Chrome DevTools or speedscope.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';

export function startProfiler(workerId: number): (() => Promise<void>) | undefined {
  const dir = process.env.SHUTTLE_CPU_PROFILE_DIR;
  if (!dir) return undefined;
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: 100 });
  session.post('Profiler.start');
  return () => new Promise((resolve) => {
    session.post('Profiler.stop', (err, result) => {
      if (!err) writeFileSync(join(dir, `worker-${workerId}.cpuprofile`), JSON.stringify(result.profile));
      session.disconnect();
      resolve();
    });
  });
}
