import type { SlotName } from '../image/slots/state.ts';

/**
 * The steps of an A/B update, in order. The seven hooks of the design plus the three
 * steps between them that the updater itself performs (install, switch, boot), so the
 * journal tells the whole story.
 */
export type HookName =
  | 'install-check'
  | 'pre-install'
  | 'install'
  | 'post-install'
  | 'pre-reboot'
  | 'switch'
  | 'boot'
  | 'post-boot-verify'
  | 'commit'
  | 'rollback';

/** `postponed`: not now, nothing broken (pre-reboot reached its deadline with calls up). */
export type HookStatus = 'ok' | 'skipped' | 'failed' | 'postponed';

export interface HookOutcome {
  status: HookStatus;
  /** One line an operator can act on. */
  detail: string;
  data?: Record<string, unknown>;
}

/** What a hook gives back: its outcome for the journal and a value for the next step. */
export interface HookResult<T> {
  outcome: HookOutcome;
  value: T;
  /** What the hook learnt about whom its outcome belongs to (install-check reads the version). */
  scope?: Partial<HookScope>;
}

/** Who the outcome belongs to: one update, one slot, one version. */
export interface HookScope {
  update_id: string | null;
  slot: SlotName | null;
  version: string | null;
}

export class HookFailure extends Error {
  readonly code: 'EHOOK_FAILED' | 'EHOOK_POSTPONED';
  readonly hook: HookName;
  readonly outcome: HookOutcome;
  constructor(hook: HookName, outcome: HookOutcome, options?: { cause?: unknown }) {
    super(`${hook}: ${outcome.detail}`, options);
    this.code = outcome.status === 'postponed' ? 'EHOOK_POSTPONED' : 'EHOOK_FAILED';
    this.hook = hook;
    this.outcome = outcome;
  }
}

export function ok(detail: string, data?: Record<string, unknown>): HookOutcome {
  return data ? { status: 'ok', detail, data } : { status: 'ok', detail };
}

export function skipped(detail: string, data?: Record<string, unknown>): HookOutcome {
  return data ? { status: 'skipped', detail, data } : { status: 'skipped', detail };
}

export function failed(detail: string, data?: Record<string, unknown>): HookOutcome {
  return data ? { status: 'failed', detail, data } : { status: 'failed', detail };
}
