import { SLOT_NAMES, type SlotName, type SlotRecord } from './state.ts';
import type { SlotTree } from './tree.ts';

/** What `branchline slots --json` prints: the public shape outside tests rely on. */
export interface SlotsReport {
  root: string;
  /** The slot that runs (or starts next); null before the first install. */
  active: SlotName | null;
  trial: { slot: SlotName; previous: SlotName; update_id: string; boots: number; max_boots: number; switched_at: string } | null;
  slots: Array<SlotRecord & { name: SlotName; active: boolean }>;
}

export function slotsReport(tree: SlotTree): SlotsReport {
  const state = tree.readState();
  const active = tree.boot.selected();
  const t = state.trial;
  return {
    root: tree.root,
    active,
    trial: t ? { slot: t.slot, previous: t.previous, update_id: t.update_id, boots: t.boots, max_boots: t.max_boots, switched_at: t.switched_at } : null,
    slots: SLOT_NAMES.map((name) => ({ name, active: name === active, ...state.slots[name] })),
  };
}

export function formatSlots(r: SlotsReport): string {
  const rows = [['SLOT', 'ACTIVE', 'STATE', 'VERSION', 'SINCE', 'NOTE']];
  for (const s of r.slots) {
    const since = s.rolled_back_at ?? s.committed_at ?? s.installed_at ?? '';
    const note = s.reason ?? (r.trial?.slot === s.name ? `on trial, start ${r.trial.boots} of ${r.trial.max_boots}` : '');
    rows.push([s.name, s.active ? '*' : '', s.state, s.version ?? '-', since, note]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  const lines = [`slot tree ${r.root}: ${r.active ? `slot ${r.active} active` : 'nothing installed'}`];
  for (const row of rows) lines.push(row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd());
  return lines.join('\n');
}
