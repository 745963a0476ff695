// CPU and memory of the processes a benchmark drives, read from /proc: shared by
// the register and call-setup benchmarks.
import { readFile } from 'node:fs/promises';

export const CLK_TCK = 100; // getconf CLK_TCK on Linux x86_64/arm64

/** Something to measure: the processes of one server. */
export interface Sampled {
  pids(): Promise<number[]>;
  /** Memory as PSS (several processes sharing memory) or RSS (one process). */
  pss: boolean;
}

export interface Usage {
  /** CPU used by the server's processes over the run, % of one core. */
  cpuPercent: number;
  /** CPU seconds (user + system) the server's processes used over the run. */
  cpuSeconds: number;
  /** Resident memory at the end, MB (RSS; for Kamailio the PSS sum, so shared memory counts once). */
  memMb: number;
  memMaxMb: number;
}

/** User + system CPU ticks of one process so far; 0 once it is gone. */
export async function procTicks(pid: number): Promise<number> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of stat; 12 and 13 after "pid (comm) ".
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

export async function procMemKb(pid: number, pss: boolean): Promise<number> {
  try {
    const text = await readFile(pss ? `/proc/${pid}/smaps_rollup` : `/proc/${pid}/status`, 'utf8');
    const m = (pss ? /^Pss:\s+([0-9]+) kB/m : /^VmRSS:\s+([0-9]+) kB/m).exec(text);
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

export async function memKb(target: Sampled): Promise<number> {
  let total = 0;
  for (const pid of await target.pids()) total += await procMemKb(pid, target.pss);
  return total;
}

/** Samples the target every second until stopped. */
export function sampleUsage(target: Sampled, onSample?: (elapsedS: number, memMb: number) => void): { stop(): Promise<Usage> } {
  const started = performance.now();
  const ticksOf = async (): Promise<number> => {
    let t = 0;
    for (const pid of await target.pids()) t += await procTicks(pid);
    return t;
  };
  const startTicks = ticksOf();
  let memMaxMb = 0;
  let lastMb = 0;
  const timer = setInterval(() => {
    void memKb(target).then((kb) => {
      lastMb = kb / 1024;
      memMaxMb = Math.max(memMaxMb, lastMb);
      onSample?.((performance.now() - started) / 1000, lastMb);
    });
  }, 1000);
  return {
    async stop(): Promise<Usage> {
      clearInterval(timer);
      const ticks = await ticksOf();
      const seconds = (performance.now() - started) / 1000;
      lastMb = (await memKb(target)) / 1024;
      memMaxMb = Math.max(memMaxMb, lastMb);
      const begin = await startTicks;
      return { cpuPercent: ((ticks - begin) / CLK_TCK / seconds) * 100, cpuSeconds: (ticks - begin) / CLK_TCK, memMb: lastMb, memMaxMb };
    },
  };
}

/**
 * Waits until the server uses under 5 % of a core over a second (max 30 s): a trial
 * that overloaded it leaves a backlog, which must not count against the next one.
 * Returns the seconds waited, or -1 if it was still busy after 30 s.
 */
export async function waitIdle(target: Sampled): Promise<number> {
  const started = performance.now();
  while (performance.now() - started < 30_000) {
    const window = sampleUsage(target);
    await new Promise((r) => setTimeout(r, 1000));
    if ((await window.stop()).cpuPercent < 5) return (performance.now() - started) / 1000;
  }
  return -1;
}

/** Samples one process's CPU every 500 ms while it lives (a SIPp load generator). */
export function sampleProcessCpu(): { onSpawn(pid: number): void; stop(): number } {
  let pid = 0;
  let startTicks = 0;
  let endTicks = 0;
  let started = 0;
  let lastSample = 0;
  // Sampled while it runs: its /proc entry is gone once it has exited.
  const timer = setInterval(() => {
    if (pid) void procTicks(pid).then((t) => { if (t > 0) { endTicks = t; lastSample = performance.now(); } });
  }, 500);
  return {
    onSpawn(p: number): void {
      pid = p;
      started = performance.now();
      void procTicks(p).then((t) => { startTicks = t; });
    },
    /** % of one core over the process's life as sampled. */
    stop(): number {
      clearInterval(timer);
      const seconds = (lastSample - started) / 1000;
      return seconds > 0 ? ((endTicks - startTicks) / CLK_TCK / seconds) * 100 : 0;
    },
  };
}
