// Telemetry: a sample of the machine (CPU, memory, disks, temperatures, interfaces;
// system-probes.ts) and of the agent (registrations, calls, channels,
// outbox, WAN) every `health.telemetry_period` seconds, queued on the `telemetry`
// stream of the outbox — the first stream shed when the outbox is over its quota.
import type { HealthMode, TelemetryData } from '../sync/protocol.ts';
import { cpuTimes, diskUsage, interfaceCounters, loadBetween, memoryFacts, networkInterfaces, temperatures, type CpuTimes } from './system-probes.ts';
import type { WanSignals } from './wan.ts';

/** What the agent reports about itself; features fill these in as they land. */
export interface AgentHealthSources {
  registrations: () => number;
  activeCalls: () => number;
  channels: () => { total: number; in_use: number };
  outbox: () => Promise<Record<string, { count: number; bytes: number }>>;
}

function settled<T>(r: PromiseSettledResult<T>): T | undefined {
  return r.status === 'fulfilled' ? r.value : undefined;
}

let lastCpu: CpuTimes | undefined;

/**
 * Samples the machine. Each probe may fail on its own (no sensors in a VM); the rest
 * still report. Only probes that never block the event loop (system-probes.ts says
 * why systeminformation's did). CPU load is the busy share since the previous
 * sample (since boot for the first).
 */
export async function sampleSystem(): Promise<TelemetryData['system']> {
  const cpu = cpuTimes();
  const load = loadBetween(lastCpu, cpu);
  lastCpu = cpu;
  const withCounters = networkInterfaces().then((list) => Promise.all(list.map(async (i) => ({ ...i, ...(await interfaceCounters(i.name)) }))));
  const [mem, disks, temp, ifaces] = await Promise.allSettled([memoryFacts(), diskUsage(), temperatures(), withCounters]);
  return {
    cpu: { load_pct: cpu.cores > 0 ? load : null, cores: cpu.cores > 0 ? cpu.cores : null },
    memory: settled(mem) ?? null,
    disks: settled(disks) ?? [],
    temperatures: settled(temp) ?? { main: null, max: null, cores: [] },
    interfaces: settled(ifaces) ?? [],
  };
}

export async function sampleTelemetry(
  sources: AgentHealthSources,
  wan: { mode: HealthMode; signals: WanSignals },
  startedAt: number,
): Promise<TelemetryData> {
  const [system, outbox] = await Promise.all([sampleSystem(), sources.outbox().catch(() => ({}))]);
  return {
    mode: wan.mode,
    uptime_s: Math.round((Date.now() - startedAt) / 1000),
    system,
    agent: {
      registrations: sources.registrations(),
      active_calls: sources.activeCalls(),
      channels: sources.channels(),
      outbox,
      wan: wan.signals,
    },
  };
}
