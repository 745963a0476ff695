// Calls on the line cards, wired into the call core (docs/calls.md, "Calls on the
// line cards"): inbound calls the trunks accept become adopted calls of the core
// (channel-call.ts), and the dial plan's `external` target goes out through the
// trunks (trunk-target.ts). The composition root calls registerLineCalls once both
// the call core and the trunks run.

import type { Logger } from 'pino';
import type { MediaEngine } from '../media/index.ts';
import type { InboundTrunkCall, TrunkService } from '../trunks/trunk-service.ts';
import type { CallCore } from './call-core.ts';
import { channelName, InboundChannelCall, type LineVoicemail } from './channel-call.ts';
import { externalTargetHandler } from './trunk-target.ts';

/** Q.850 causes for a line call the core cannot take: 42 congestion at the call limit, 41 while stopping. */
const CAUSE_OVERLOADED = 42;
const CAUSE_STOPPED = 41;

/** `voicemail`: takes messages for line calls that end up in a mailbox (a DID, a no-answer fallback). */
export function registerLineCalls(core: CallCore, trunks: TrunkService, media: MediaEngine, logger: Logger, voicemail?: LineVoicemail): void {
  core.setTargetHandler('external', externalTargetHandler({ trunks, media }));
  const placement = core.placement;
  const deps = { ...placement, routingState: core.routingState, media, trunks, ...(voicemail !== undefined ? { voicemail } : {}) };
  trunks.onInbound((line: InboundTrunkCall) => {
    const caller = line.callerId.number ?? 'anonymous';
    const adopted = core.adopt(
      {
        caller,
        ...(line.callerId.name !== undefined ? { callerName: line.callerId.name } : {}),
        dialed: line.dialled,
        mediaPolicy: 'anchored',
        logContext: { channel: channelName(line.card, line.channel) },
      },
      (call, link, log) => new InboundChannelCall(deps, line, call, link, log),
    );
    if (adopted === 'stopped' || adopted === 'overloaded') {
      const cause = adopted === 'stopped' ? CAUSE_STOPPED : CAUSE_OVERLOADED;
      logger.info({ event: 'line.refused', channel: channelName(line.card, line.channel), cause }, `line call refused: the call core is ${adopted}`);
      line.release(cause).catch((err: unknown) => logger.warn({ err }, 'could not release a refused line call'));
      return;
    }
    void adopted.run();
  });
}
