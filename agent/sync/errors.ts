// Errors of the sync subsystem, told apart by code, never by message text.
export type SyncErrorCode =
  | 'ENOTCONNECTED' // the MQTT link is down
  | 'ETIMEOUT' // no response within the deadline
  | 'EBROKER' // the embedded broker could not start
  | 'ETLS' // a certificate file could not be read
  | 'EUNKNOWNCOMMAND' // a command name nobody handles
  | 'EBADARGS' // a command's arguments are wrong
  | 'EVERSION' // a config push based on a version that is no longer current
  | 'ENOSITE' // a site the controller has never heard of
  | 'EINTERNAL'; // a handler failed

export class SyncError extends Error {
  readonly code: SyncErrorCode;
  constructor(code: SyncErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** The code and message of any thrown value, for an error response on the wire. */
export function errorBody(err: unknown): { code: string; message: string } {
  if (err instanceof SyncError) return { code: err.code, message: err.message };
  const code = (err as { code?: unknown } | null)?.code;
  return { code: typeof code === 'string' ? code : 'EINTERNAL', message: err instanceof Error ? err.message : String(err) };
}

/** An error the other side reported in a response, with its code as sent. */
export class RemoteError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}
