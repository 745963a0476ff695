import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { AgentConfig } from './config/types.ts';
import { pidFileName, storeFileName } from './agent.ts';
import { loadBindings } from './store/bindings.ts';
import { Database } from './store/db.ts';
import { loadExtensions } from './store/extensions.ts';

export interface StatusReport {
  site: string;
  running: boolean;
  pid: number | null;
  extensions: number;
  /** WAN mode last recorded by agent/health: normal or survivable (null before the first). */
  mode: string | null;
  registrations: Array<{
    extension: string;
    contact: string;
    expires_in: number;
    user_agent: string | null;
    source: string;
    transport: string;
  }>;
}

function runningPid(stateDir: string): number | null {
  const file = path.join(stateDir, pidFileName);
  if (!existsSync(file)) return null;
  const pid = Number(readFileSync(file, 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 0) return null;
  try {
    process.kill(pid, 0);
    return pid;
  } catch {
    return null;
  }
}

/**
 * Reads the agent's state from its store. Works whether or not the agent runs:
 * the store is the truth for bindings (WAL lets us read beside a running writer).
 */
export async function readStatus(config: AgentConfig): Promise<StatusReport> {
  const pid = runningPid(config.state_dir);
  const file = path.join(config.state_dir, storeFileName);
  const report: StatusReport = { site: config.site.id, running: pid !== null, pid, extensions: 0, mode: null, registrations: [] };
  if (!existsSync(file)) return report;
  const db = await Database.open(file, { readonly: true });
  try {
    const now = Date.now();
    report.extensions = (await loadExtensions(db)).length;
    report.mode = await readMode(db);
    const { live } = await loadBindings(db, now);
    report.registrations = live.map((b) => ({
      extension: b.extension,
      contact: b.contact,
      expires_in: Math.max(0, Math.round((b.expiresAt - now) / 1000)),
      user_agent: b.userAgent,
      source: b.source,
      transport: b.source.split(':')[0] ?? 'udp',
    }));
  } finally {
    await db.close();
  }
  return report;
}

async function readMode(db: Database): Promise<string | null> {
  try {
    const row = await db.get<{ value: string }>("SELECT value FROM sync_state WHERE key = 'health.mode'");
    return row ? String(JSON.parse(row.value)) : null;
  } catch {
    return null; // a store from before the sync tables existed
  }
}

export function formatStatus(r: StatusReport): string {
  const mode = r.mode ? (r.running ? `, ${r.mode} mode` : `, last in ${r.mode} mode`) : '';
  const lines = [
    `site ${r.site}: agent ${r.running ? `running (pid ${r.pid})` : 'not running'}${mode}, ${r.extensions} extensions, ${r.registrations.length} registered contacts`,
  ];
  if (r.registrations.length > 0) {
    const rows = [['EXTENSION', 'CONTACT', 'EXPIRES', 'SOURCE', 'USER AGENT']];
    for (const reg of r.registrations) rows.push([reg.extension, reg.contact, `${reg.expires_in}s`, reg.source, reg.user_agent ?? '']);
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
    for (const row of rows) lines.push(row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd());
  }
  return lines.join('\n');
}
