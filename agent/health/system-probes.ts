// Machine probes that never block the event loop. On Linux systeminformation gets
// most facts from child processes: networkInterfaces() with execSync (70-200 ms during
// which the agent answers no SIP at all), currentLoad() with execSync('cat /proc/stat'),
// networkStats() with one exec per interface (an asynchronous child, but forking a
// process of this size blocks the loop 10-30 ms), and fsSize() and cpuTemperature()
// block 3-15 ms. Measured here, those stalls were the post-dial-delay tail of calls.
// These read the same facts from the kernel with asynchronous file system calls
// (Linux; elsewhere what Node's os module knows). Memory too, as systeminformation's
// mem() computed it from /proc/meminfo: the agent no longer loads that package, whose
// 450 KB of code (a sixth of the agent's bundle) stayed in every idle agent's memory
// for this one probe (docs/decisions/0004-single-executable.md, Idle memory).
import { readFile, readdir, realpath, statfs } from 'node:fs/promises';
import os from 'node:os';

export interface InterfaceFacts {
  name: string;
  ip4: string;
  ip6: string;
  mac: string;
  /** operstate from sysfs ("up", "down", "unknown", ...); "unknown" when not readable. */
  state: string;
  speed_mbps: number | null;
}

export interface DiskFacts {
  mount: string;
  fs: string;
  size: number;
  used: number;
  use_pct: number;
}

export interface TemperatureFacts {
  main: number | null;
  max: number | null;
  cores: number[];
}

async function readText(file: string): Promise<string | undefined> {
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch {
    return undefined;
  }
}

/** Physical interfaces in /sys/class/net (virtual ones other than loopback only when they carry an address). */
async function sysfsInterfaces(): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir('/sys/class/net');
  } catch {
    return [];
  }
  const physical = await Promise.all(
    names.map(async (name) => {
      const target = await realpath(`/sys/class/net/${name}`).catch(() => '');
      return target.includes('/devices/virtual/') ? undefined : name;
    }),
  );
  return physical.filter((n): n is string => n !== undefined);
}

export async function networkInterfaces(): Promise<InterfaceFacts[]> {
  const addressed = os.networkInterfaces();
  const names = [...new Set([...Object.keys(addressed), ...(await sysfsInterfaces())])];
  return Promise.all(
    names.map(async (name) => {
      const addresses = addressed[name] ?? [];
      const v4 = addresses.find((a) => a.family === 'IPv4');
      const v6 = addresses.find((a) => a.family === 'IPv6');
      const [state, speed] = await Promise.all([readText(`/sys/class/net/${name}/operstate`), readText(`/sys/class/net/${name}/speed`)]);
      const mbps = speed === undefined ? NaN : Number(speed);
      return {
        name,
        ip4: v4?.address ?? '',
        ip6: v6?.address ?? '',
        mac: addresses[0]?.mac ?? (await readText(`/sys/class/net/${name}/address`)) ?? '',
        state: state ?? 'unknown',
        // The kernel says -1 (or refuses to read) when the link has no speed.
        speed_mbps: Number.isFinite(mbps) && mbps >= 0 ? mbps : null,
      };
    }),
  );
}

/** Filesystems on block devices, as df shows them: use% of what an unprivileged user can fill. */
export async function diskUsage(): Promise<DiskFacts[]> {
  const mounts = await readText('/proc/mounts');
  if (mounts === undefined) return [];
  const seen = new Set<string>();
  const candidates: Array<{ device: string; mount: string }> = [];
  for (const line of mounts.split('\n')) {
    const [device, mountField, type] = line.split(' ');
    if (device === undefined || mountField === undefined || type === undefined) continue;
    // Read-only images (the A/B slots' squashfs) are always full; they say nothing about space.
    if (!device.startsWith('/dev/') || type === 'squashfs') continue;
    const mount = mountField.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
    // A bind mount (e.g. /run/netns) repeats its device's figures: the first mount stands for it.
    if (seen.has(device)) continue;
    seen.add(device);
    candidates.push({ device, mount });
  }
  const disks = await Promise.all(
    candidates.map(async ({ device, mount }) => {
      try {
        const s = await statfs(mount);
        const size = s.blocks * s.bsize;
        const used = (s.blocks - s.bfree) * s.bsize;
        const available = s.bavail * s.bsize;
        return { mount, fs: device, size, used, use_pct: used + available > 0 ? Math.round((1000 * used) / (used + available)) / 10 : 0 };
      } catch {
        return undefined;
      }
    }),
  );
  return disks.filter((d): d is DiskFacts => d !== undefined && d.size > 0);
}

/** °C from thermal zones and hwmon sensors; nulls where the machine exposes none (most VMs). */
export async function temperatures(): Promise<TemperatureFacts> {
  const zones: Array<{ type: string; celsius: number }> = [];
  const zoneNames = await readdir('/sys/class/thermal').catch(() => [] as string[]);
  await Promise.all(
    zoneNames
      .filter((z) => z.startsWith('thermal_zone'))
      .map(async (z) => {
        const [type, temp] = await Promise.all([readText(`/sys/class/thermal/${z}/type`), readText(`/sys/class/thermal/${z}/temp`)]);
        const milli = Number(temp);
        if (temp !== undefined && Number.isFinite(milli)) zones.push({ type: type ?? z, celsius: milli / 1000 });
      }),
  );
  const cores: number[] = [];
  const hwmons = await readdir('/sys/class/hwmon').catch(() => [] as string[]);
  await Promise.all(
    hwmons.map(async (h) => {
      const files = await readdir(`/sys/class/hwmon/${h}`).catch(() => [] as string[]);
      await Promise.all(
        files
          .filter((f) => /^temp[0-9]+_label$/.test(f))
          .map(async (f) => {
            const label = await readText(`/sys/class/hwmon/${h}/${f}`);
            if (label === undefined || !/^Core /.test(label)) return;
            const milli = Number(await readText(`/sys/class/hwmon/${h}/${f.replace('_label', '_input')}`));
            if (Number.isFinite(milli)) cores.push(milli / 1000);
          }),
      );
    }),
  );
  const all = [...zones.map((z) => z.celsius), ...cores];
  const pkg = zones.find((z) => z.type === 'x86_pkg_temp') ?? zones[0];
  return { main: pkg?.celsius ?? null, max: all.length > 0 ? Math.max(...all) : null, cores };
}

export interface CpuTimes {
  idle: number;
  total: number;
}

/** Summed CPU times of all cores (ms since boot), for a load between two samples. */
export function cpuTimes(): CpuTimes & { cores: number } {
  const cpus = os.cpus();
  let idle = 0;
  let total = 0;
  for (const c of cpus) {
    idle += c.times.idle;
    total += c.times.user + c.times.nice + c.times.sys + c.times.idle + c.times.irq;
  }
  return { idle, total, cores: cpus.length };
}

/** Busy share (%) between two samples; since boot when there is no earlier one. */
export function loadBetween(earlier: CpuTimes | undefined, now: CpuTimes): number {
  const total = now.total - (earlier?.total ?? 0);
  const idle = now.idle - (earlier?.idle ?? 0);
  return total > 0 ? Math.round((1000 * (total - idle)) / total) / 10 : 0;
}

/** Byte counters of an interface since it came up, from sysfs; nulls where not readable. */
export async function interfaceCounters(name: string): Promise<{ rx_bytes: number | null; tx_bytes: number | null }> {
  const [rx, tx] = await Promise.all([readText(`/sys/class/net/${name}/statistics/rx_bytes`), readText(`/sys/class/net/${name}/statistics/tx_bytes`)]);
  const num = (v: string | undefined): number | null => (v !== undefined && /^[0-9]+$/.test(v) ? Number(v) : null);
  return { rx_bytes: num(rx), tx_bytes: num(tx) };
}

export interface MemoryFacts {
  total: number;
  /** In use: total less what is available (systeminformation's `active`). */
  used: number;
  available: number;
}

/**
 * Memory in bytes, from /proc/meminfo as systeminformation's mem() reads it: available
 * is MemAvailable (or MemFree + Buffers + Cached + Slab on kernels without it), used is
 * total less available. Elsewhere, or when the file is unreadable, Node's os figures.
 */
export async function memoryFacts(): Promise<MemoryFacts> {
  const text = await readText('/proc/meminfo');
  const kb = (key: string): number => {
    const m = text === undefined ? null : new RegExp(`^${key}:\\s*(\\d+)`, 'mi').exec(text);
    return m ? Number(m[1]) * 1024 : 0;
  };
  const total = kb('MemTotal') || os.totalmem();
  const free = kb('MemFree') || os.freemem();
  const available = kb('MemAvailable') || free + kb('Buffers') + kb('Cached') + kb('Slab');
  return { total, used: total - available, available };
}
