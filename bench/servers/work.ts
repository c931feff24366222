/**
 * A fixed amount of CPU work for the calibration contenders. On this kind of shared machine a
 * server that spends more time per request also pays more per request in the kernel and the
 * event loop (fewer requests per wake-up, costlier socket writes), so "CPU vs bare" is larger
 * than the work added. A bare handler doing a known amount of work, measured in the same run,
 * shows that factor; a session layer is then held against it.
 *
 * @packageDocumentation
 */

let sink = 0;

/** One unit of work that the JIT cannot drop: a few integer mixes. */
function spin(iterations: number): void {
  let x = sink | 1;
  for (let i = 0; i < iterations; i++) x = Math.imul(x ^ (x >>> 15), 0x2c1b3c6d) + i;
  sink = x;
}

/**
 * Answers a function that does `micros` µs of CPU work, calibrated once against the process's
 * own CPU clock (the fastest of several measurements, so a preempted one does not count).
 */
export function calibratedWork(micros: number): () => void {
  const probe = 200_000;
  spin(probe);
  let best = Infinity;
  for (let round = 0; round < 7; round++) {
    const start = process.cpuUsage();
    spin(probe);
    const used = process.cpuUsage(start);
    best = Math.min(best, used.user + used.system);
  }
  const iterations = Math.max(1, Math.round((probe * micros) / Math.max(1, best)));
  return () => spin(iterations);
}
