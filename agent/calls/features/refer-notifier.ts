// The implicit subscription a REFER creates (RFC 3515 §2.4.4): NOTIFYs in the
// referrer's dialog carrying the progress of the transfer as a message/sipfrag
// (RFC 3420) status line — "SIP/2.0 100 Trying", "SIP/2.0 180 Ringing", then a
// final status that terminates the subscription. NOTIFYs go one at a time, in
// order (each waits for the previous one's answer). With "Refer-Sub: false"
// (RFC 4488) the referrer asked for none, and none are sent.

import type { Logger } from 'pino';
import type { Dialog } from '../../sip/dialog.ts';
import type { SipStack } from '../../sip/stack.ts';

/** How long the implicit subscription lasts if no final NOTIFY ends it (RFC 3515 leaves it to us). */
const SUBSCRIPTION_SECONDS = 60;

export class ReferNotifier {
  readonly #stack: SipStack;
  readonly #dialog: Dialog;
  readonly #log: Logger;
  /** The REFER's CSeq: the Event id, so that several REFERs in one dialog stay apart. */
  readonly #eventId: number;
  readonly #enabled: boolean;
  #chain: Promise<void> = Promise.resolve();
  #terminated = false;

  constructor(stack: SipStack, dialog: Dialog, referSeq: number, enabled: boolean, log: Logger) {
    this.#stack = stack;
    this.#dialog = dialog;
    this.#eventId = referSeq;
    this.#enabled = enabled;
    this.#log = log;
  }

  /** A provisional status of the transfer (100, 180, 183): the subscription stays active. */
  progress(status: number, reason: string): Promise<void> {
    return this.#notify(status, reason, false);
  }

  /** The transfer's final status: the subscription ends. Later calls do nothing. */
  final(status: number, reason: string): Promise<void> {
    return this.#notify(status, reason, true);
  }

  #notify(status: number, reason: string, final: boolean): Promise<void> {
    if (!this.#enabled || this.#terminated) return this.#chain;
    if (final) this.#terminated = true;
    const state = final ? 'terminated;reason=noresource' : `active;expires=${SUBSCRIPTION_SECONDS}`;
    const body = `SIP/2.0 ${status} ${reason.replace(/[\r\n]/g, ' ')}\r\n`;
    this.#chain = this.#chain.then(async () => {
      try {
        const request = this.#dialog.createRequest('NOTIFY', {
          headers: { Event: `refer;id=${this.#eventId}`, 'Subscription-State': state },
          body,
          contentType: 'message/sipfrag;version=2.0',
        });
        const res = await this.#stack.request(request, this.#dialog.nextHop());
        if (res.status >= 300) this.#log.info({ status: res.status, sipfrag: status }, 'referrer refused a transfer NOTIFY');
      } catch (err) {
        // The referrer hung up already (its dialog ended) or did not answer: the
        // transfer goes on; only its progress report is lost.
        this.#log.debug({ err: (err as Error).message, sipfrag: status }, 'transfer NOTIFY not delivered');
      }
    });
    return this.#chain;
  }
}
