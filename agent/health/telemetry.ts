// Telemetry: a sample of the machine (CPU, memory, disks, temperatures, interfaces;
// systeminformation and system-probes.ts) and of the agent (registrations, calls, channels,
// outbox, WAN) every `health.telemetry_period` seconds, queued on the `telemetry`
// stream of the outbox — the first stream shed when the outbox is over its quota.
import si from 'systeminformation';
import type { HealthMode, TelemetryData } from '../sync/protocol.ts';
import { diskUsage, networkInterfaces, temperatures } from './system-probes.ts';
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

const round = (n: number, digits = 1): number => Math.round(n * 10 ** digits) / 10 ** digits;

/**
 * Samples the machine. Each probe may fail on its own (no sensors in a VM); the rest
 * still report. Only non-blocking probes: see system-probes.ts for why interfaces,
 * disks and temperatures are read here rather than through systeminformation.
 */
export async function sampleSystem(): Promise<TelemetryData['system']> {
  // networkStats('*') would list the interfaces through systeminformation's blocking
  // probe: it gets the names found here instead.
  const interfaceList = networkInterfaces();
  const counters = interfaceList.then((list) => (list.length > 0 ? si.networkStats(list.map((i) => i.name).join(',')) : []));
  const [load, mem, disks, temp, ifaces, stats] = await Promise.allSettled([si.currentLoad(), si.mem(), diskUsage(), temperatures(), interfaceList, counters]);
  const l = settled(load);
  const m = settled(mem);
  const statList = settled(stats) ?? [];
  return {
    cpu: { load_pct: l ? round(l.currentLoad) : null, cores: l ? l.cpus.length : null },
    memory: m ? { total: m.total, used: m.active, available: m.available } : null,
    disks: settled(disks) ?? [],
    temperatures: settled(temp) ?? { main: null, max: null, cores: [] },
    interfaces: (settled(ifaces) ?? []).map((i) => {
      const st = statList.find((s) => s.iface === i.name);
      return { ...i, rx_bytes: st ? st.rx_bytes : null, tx_bytes: st ? st.tx_bytes : null };
    }),
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
