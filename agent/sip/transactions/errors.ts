// Errors a client transaction rejects with, told apart by `code`.

/** Timer B or F fired: no final response. Treat as a 408 (RFC 3261 8.1.3.1). */
export class SipTimeoutError extends Error {
  readonly code = 'ETIMEDOUT';
  readonly status = 408;
  readonly method: string;

  constructor(method: string, waitedMs: number) {
    super(`no final response to ${method} within ${waitedMs} ms`);
    this.name = 'SipTimeoutError';
    this.method = method;
  }
}

/** The stack was stopped while the transaction was pending. */
export class SipStackStoppedError extends Error {
  readonly code = 'ESTOPPED';

  constructor() {
    super('SIP stack stopped');
    this.name = 'SipStackStoppedError';
  }
}

/** The request cannot start a client transaction (ACK, missing headers...). */
export class SipRequestError extends Error {
  readonly code = 'EREQUEST';

  constructor(message: string) {
    super(message);
    this.name = 'SipRequestError';
  }
}
