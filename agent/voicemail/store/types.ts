// What a stored voicemail message looks like to the rest of voicemail.

export type Folder = 'INBOX' | 'Old' | 'Saved';
export const FOLDERS: readonly Folder[] = ['INBOX', 'Old', 'Saved'];

export type DepositReason = 'busy' | 'no-answer' | 'unavailable' | 'direct';

export interface StoredMessage {
  id: string;
  mailbox: string;
  folder: Folder;
  caller: string;
  callerName?: string;
  reason: string;
  /** Epoch ms. */
  receivedAt: number;
  durationMs: number;
  /** Absolute path of the WAV. */
  file: string;
}

export interface MailboxCounts {
  /** INBOX. */
  newMessages: number;
  /** Old + Saved: heard, kept. */
  oldMessages: number;
  /** Every folder: what max_messages limits. */
  total: number;
}

export class VoicemailStoreError extends Error {
  readonly code: 'EMAILBOX' | 'ENOMESSAGE' | 'EFOLDER';
  constructor(code: VoicemailStoreError['code'], message: string) {
    super(message);
    this.name = 'VoicemailStoreError';
    this.code = code;
  }
}
