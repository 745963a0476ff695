// Telemetry: a sample of the machine (systeminformation: CPU, memory, disks,
// temperatures, interfaces) and of the agent (registrations, calls, channels,
// outbox, WAN) every `health.telemetry_period` seconds, queued on the `telemetry`
// stream of the outbox — the first stream shed when the outbox is over its quota.
import si from 'systeminformation';
import type { HealthMode, TelemetryData } from '../sync/protocol.ts';
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

/** Samples the machine. Each probe may fail on its own (no sensors in a VM); the rest still report. */
export async function sampleSystem(): Promise<TelemetryData['system']> {
  const [load, mem, disks, temp, ifaces, stats] = await Promise.allSettled([
    si.currentLoad(),
    si.mem(),
    si.fsSize(),
    si.cpuTemperature(),
    si.networkInterfaces(),
    si.networkStats('*'),
  ]);
  const l = settled(load);
  const m = settled(mem);
  const t = settled(temp);
  const ifaceList = settled(ifaces);
  const statList = settled(stats) ?? [];
  return {
    cpu: { load_pct: l ? round(l.currentLoad) : null, cores: l ? l.cpus.length : null },
    memory: m ? { total: m.total, used: m.active, available: m.available } : null,
    disks: (settled(disks) ?? []).map((d) => ({ mount: d.mount, fs: d.fs, size: d.size, used: d.used, use_pct: round(d.use ?? 0) })),
    temperatures: {
      main: typeof t?.main === 'number' ? t.main : null,
      max: typeof t?.max === 'number' ? t.max : null,
      cores: (t?.cores ?? []).filter((c): c is number => typeof c === 'number'),
    },
    interfaces: (Array.isArray(ifaceList) ? ifaceList : ifaceList ? [ifaceList] : []).map((i) => {
      const st = statList.find((s) => s.iface === i.iface);
      return {
        name: i.iface,
        ip4: i.ip4,
        ip6: i.ip6,
        mac: i.mac,
        state: i.operstate,
        speed_mbps: typeof i.speed === 'number' && i.speed >= 0 ? i.speed : null,
        rx_bytes: st ? st.rx_bytes : null,
        tx_bytes: st ? st.tx_bytes : null,
      };
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
