// SDP offer/answer (RFC 3264) for one audio stream of G.711 with RFC 4733
// telephone-event, parsed and written with sdp-transform.
//
// What the call core gets from here:
//   - createOffer(): our offer (PCMU, PCMA, telephone-event in our preference order);
//   - answerOffer(): the answer to a peer's offer and what was agreed, or an
//     SdpNegotiationError (488) when the offer is malformed, has no usable audio
//     or no codec in common;
//   - acceptAnswer(): what was agreed from the answer to our offer.
// Directions are always given from our side: `direction: 'recvonly'` means we
// receive and do not send (the peer put us on hold with a=sendonly).
import net from 'node:net';
import sdpTransform from 'sdp-transform';
import type { MediaDescription, SessionDescription } from 'sdp-transform';
import { SdpNegotiationError } from './errors.ts';
import { staticPayloadType, type CodecName } from './g711.ts';

export type Direction = 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';

export const DEFAULT_CODECS: readonly CodecName[] = ['PCMU', 'PCMA'];
export const DEFAULT_TELEPHONE_EVENT_PT = 101;

/** o= line state for one dialog side: the version must grow with every new offer/answer body (RFC 3264 §8). */
export class SdpOrigin {
  readonly sessionId: string;
  #version: number;

  constructor(sessionId?: string, version?: number) {
    // NTP-ish numbers as RFC 4566 suggests; kept as a string so no precision is lost.
    this.sessionId = sessionId ?? String(Math.floor(Math.random() * 2 ** 31) + 1);
    this.#version = version ?? Number(this.sessionId);
  }

  get version(): number {
    return this.#version;
  }

  /** The version for the next body we send that differs from the previous one. */
  bump(): number {
    this.#version++;
    return this.#version;
  }
}

export interface LocalMedia {
  /** Address the peer sends RTP to (c= line). */
  address: string;
  /** Our RTP port (m= line). RTCP is on port + 1. */
  port: number;
  /** Codecs we accept, most preferred first. */
  codecs?: readonly CodecName[];
  /** Offer/accept RFC 4733 (default true); a number chooses our payload type in offers. */
  telephoneEvent?: boolean | number;
  ptime?: number;
  /** What we want: e.g. 'sendonly' to put the peer on hold. Default 'sendrecv'. */
  direction?: Direction;
  origin: SdpOrigin;
  /** s= line (default "Branchline"). */
  sessionName?: string;
}

/** The outcome of a negotiation: where to send, what, and in which directions. */
export interface NegotiatedMedia {
  remoteAddress: string;
  remotePort: number;
  remoteRtcpPort: number;
  codec: CodecName;
  payloadType: number;
  /** Payload type for telephone-event, when both sides support it. */
  telephoneEventPt?: number;
  /** Our direction after negotiation. */
  direction: Direction;
  /** The peer's direction as it declared it (c=0.0.0.0 counted as not receiving). */
  remoteDirection: Direction;
  /** The peer asked us to stop sending (a=sendonly, a=inactive or c=0.0.0.0). */
  heldByRemote: boolean;
  ptime: number;
  /** Index of the audio m= line used. */
  mediaIndex: number;
}

interface RemoteFormat {
  payloadType: number;
  name: string;
  rate: number;
}

function sends(d: Direction): boolean {
  return d === 'sendrecv' || d === 'sendonly';
}

function receives(d: Direction): boolean {
  return d === 'sendrecv' || d === 'recvonly';
}

function makeDirection(send: boolean, receive: boolean): Direction {
  return send ? (receive ? 'sendrecv' : 'sendonly') : receive ? 'recvonly' : 'inactive';
}

function parse(text: string): SessionDescription {
  if (typeof text !== 'string' || !/^v=0\s*$/m.test(text.split('\n', 1)[0] ?? '')) {
    throw new SdpNegotiationError('EMALFORMED', 'SDP does not start with v=0');
  }
  let parsed: SessionDescription;
  try {
    parsed = sdpTransform.parse(text);
  } catch (err) {
    throw new SdpNegotiationError('EMALFORMED', `SDP does not parse: ${(err as Error).message}`);
  }
  if (!parsed.origin || !Array.isArray(parsed.media)) {
    throw new SdpNegotiationError('EMALFORMED', 'SDP has no o= line or no m= lines');
  }
  for (const m of parsed.media) {
    if (typeof m.port !== 'number' || !Number.isInteger(m.port) || m.port < 0 || m.port > 65535 || !m.protocol) {
      throw new SdpNegotiationError('EMALFORMED', `SDP m=${m.type} line has no valid port or protocol`);
    }
  }
  return parsed;
}

function formatsOf(m: MediaDescription): RemoteFormat[] {
  const payloads = String(m.payloads ?? '')
    .trim()
    .split(/\s+/)
    .filter((p) => p !== '');
  const formats: RemoteFormat[] = [];
  for (const p of payloads) {
    const pt = Number(p);
    if (!Number.isInteger(pt) || pt < 0 || pt > 127) {
      throw new SdpNegotiationError('EMALFORMED', `SDP m=${m.type} line has a bad payload type ${JSON.stringify(p)}`);
    }
    const map = m.rtp?.find((r) => r.payload === pt);
    if (map) formats.push({ payloadType: pt, name: map.codec.toUpperCase(), rate: map.rate ?? 8000 });
    else if (pt === 0) formats.push({ payloadType: 0, name: 'PCMU', rate: 8000 });
    else if (pt === 8) formats.push({ payloadType: 8, name: 'PCMA', rate: 8000 });
    else formats.push({ payloadType: pt, name: '', rate: 0 });
  }
  return formats;
}

function connectionAddress(session: SessionDescription, m: MediaDescription): string {
  const ip = m.connection?.ip ?? session.connection?.ip;
  if (!ip) throw new SdpNegotiationError('EMALFORMED', 'SDP has no c= line for the audio stream');
  // c= may carry a multicast TTL suffix (a.b.c.d/127); we only do unicast.
  const address = ip.split('/')[0]!;
  if (net.isIP(address) === 0) throw new SdpNegotiationError('EMALFORMED', `SDP c= address is not an IP: ${ip}`);
  return address;
}

function directionOf(session: SessionDescription, m: MediaDescription): Direction {
  return (m.direction ?? session.direction ?? 'sendrecv') as Direction;
}

/** Audio m= lines we could use: RTP/AVP (or AVPF), port not 0. SRTP (SAVP) we cannot do. */
function usableAudio(m: MediaDescription): boolean {
  return m.type === 'audio' && m.port !== 0 && /^RTP\/AVPF?$/i.test(m.protocol);
}

function telephoneEventOf(formats: RemoteFormat[]): number | undefined {
  return formats.find((f) => f.name === 'TELEPHONE-EVENT' && f.rate === 8000)?.payloadType;
}

function isHoldAddress(address: string): boolean {
  return address === '0.0.0.0' || address === '::';
}

function audioMedia(local: LocalMedia, codecs: { name: CodecName; pt: number }[], tePt: number | undefined, direction: Direction): MediaDescription {
  const rtp: MediaDescription['rtp'] = codecs.map((c) => ({ payload: c.pt, codec: c.name, rate: 8000 }));
  const fmtp: MediaDescription['fmtp'] = [];
  const payloads = codecs.map((c) => c.pt);
  if (tePt !== undefined) {
    rtp.push({ payload: tePt, codec: 'telephone-event', rate: 8000 });
    fmtp.push({ payload: tePt, config: '0-16' });
    payloads.push(tePt);
  }
  return {
    type: 'audio',
    port: local.port,
    protocol: 'RTP/AVP',
    payloads: payloads.join(' '),
    rtp,
    fmtp,
    ptime: local.ptime ?? 20,
    direction,
  };
}

function session(local: LocalMedia, media: MediaDescription[]): SessionDescription {
  const ipVer = net.isIPv6(local.address) ? 6 : 4;
  return {
    version: 0,
    origin: {
      username: 'branchline',
      sessionId: local.origin.sessionId,
      sessionVersion: local.origin.version,
      netType: 'IN',
      ipVer,
      address: local.address,
    },
    name: local.sessionName ?? 'Branchline',
    connection: { version: ipVer, ip: local.address },
    timing: { start: 0, stop: 0 },
    media,
  };
}

/** Our offer: every codec we accept in preference order, plus telephone-event. */
export function createOffer(local: LocalMedia): string {
  const codecs = (local.codecs ?? DEFAULT_CODECS).map((name) => ({ name, pt: staticPayloadType[name] }));
  const te = local.telephoneEvent ?? true;
  const tePt = te === false ? undefined : te === true ? DEFAULT_TELEPHONE_EVENT_PT : te;
  return sdpTransform.write(session(local, [audioMedia(local, codecs, tePt, local.direction ?? 'sendrecv')]));
}

/**
 * Answers a peer's offer. Picks the first audio stream we can use and, in it, the
 * first codec of OUR preference list that the offer contains; every other m=
 * line is rejected with port 0 (RFC 3264 §6). Throws SdpNegotiationError.
 */
export function answerOffer(offerText: string, local: LocalMedia): { sdp: string; media: NegotiatedMedia } {
  const offer = parse(offerText);
  const preference = local.codecs ?? DEFAULT_CODECS;
  let chosen: { index: number; codec: CodecName; pt: number; formats: RemoteFormat[] } | undefined;
  let sawAudio = false;
  for (let i = 0; i < offer.media.length && !chosen; i++) {
    const m = offer.media[i]!;
    if (!usableAudio(m)) continue;
    sawAudio = true;
    const formats = formatsOf(m);
    for (const name of preference) {
      const f = formats.find((x) => x.name === name && x.rate === 8000);
      if (f) {
        chosen = { index: i, codec: name, pt: f.payloadType, formats };
        break;
      }
    }
  }
  if (!chosen) {
    if (!sawAudio) throw new SdpNegotiationError('ENOAUDIO', 'the offer has no RTP/AVP audio stream we can use');
    throw new SdpNegotiationError('ENOCODEC', `the offer has none of ${preference.join(', ')}`);
  }
  const m = offer.media[chosen.index]!;
  const remoteAddress = connectionAddress(offer, m);
  let remoteDirection = directionOf(offer, m);
  // RFC 3264 §8.4: c=0.0.0.0 is the old (RFC 2543) way to say "do not send to me".
  if (isHoldAddress(remoteAddress)) remoteDirection = makeDirection(sends(remoteDirection), false);
  const wanted = local.direction ?? 'sendrecv';
  // §6.1: we may send only if the offerer receives, receive only if it sends.
  const direction = makeDirection(sends(wanted) && receives(remoteDirection), receives(wanted) && sends(remoteDirection));
  const wantEvents = local.telephoneEvent ?? true;
  const offeredTe = telephoneEventOf(chosen.formats);
  const tePt = wantEvents === false ? undefined : offeredTe;

  const answerMedia: MediaDescription[] = offer.media.map((om, i) => {
    if (i === chosen.index) return audioMedia(local, [{ name: chosen.codec, pt: chosen.pt }], tePt, direction);
    // Rejected stream: port 0, the offer's formats echoed (§6), nothing else.
    return { type: om.type, port: 0, protocol: om.protocol, payloads: String(om.payloads ?? ''), rtp: [], fmtp: [] };
  });
  const sdp = sdpTransform.write(session(local, answerMedia));
  return {
    sdp,
    media: {
      remoteAddress,
      remotePort: m.port,
      remoteRtcpPort: m.rtcp?.port ?? m.port + 1,
      codec: chosen.codec,
      payloadType: chosen.pt,
      ...(tePt === undefined ? {} : { telephoneEventPt: tePt }),
      direction,
      remoteDirection,
      heldByRemote: !receives(remoteDirection),
      ptime: m.ptime ?? 20,
      mediaIndex: chosen.index,
    },
  };
}

/**
 * Reads the answer to an offer we made with `local`. The codec is the first one
 * in the answer that we offered (§7: the answerer's preference wins now).
 */
export function acceptAnswer(answerText: string, local: Pick<LocalMedia, 'codecs' | 'telephoneEvent' | 'direction'>): NegotiatedMedia {
  const answer = parse(answerText);
  const offered = local.codecs ?? DEFAULT_CODECS;
  const index = answer.media.findIndex((m) => m.type === 'audio');
  if (index < 0) throw new SdpNegotiationError('ENOAUDIO', 'the answer has no audio stream');
  const m = answer.media[index]!;
  if (!usableAudio(m)) throw new SdpNegotiationError('ENOAUDIO', 'the answer rejected the audio stream');
  const formats = formatsOf(m);
  const f = formats.find((x) => x.rate === 8000 && (offered as readonly string[]).includes(x.name));
  if (!f) throw new SdpNegotiationError('ENOCODEC', 'the answer has none of the codecs we offered');
  const remoteAddress = connectionAddress(answer, m);
  let remoteDirection = directionOf(answer, m);
  if (isHoldAddress(remoteAddress)) remoteDirection = makeDirection(sends(remoteDirection), false);
  const wanted = local.direction ?? 'sendrecv';
  const direction = makeDirection(sends(wanted) && receives(remoteDirection), receives(wanted) && sends(remoteDirection));
  const tePt = (local.telephoneEvent ?? true) === false ? undefined : telephoneEventOf(formats);
  return {
    remoteAddress,
    remotePort: m.port,
    remoteRtcpPort: m.rtcp?.port ?? m.port + 1,
    codec: f.name as CodecName,
    payloadType: f.payloadType,
    ...(tePt === undefined ? {} : { telephoneEventPt: tePt }),
    direction,
    remoteDirection,
    heldByRemote: !receives(remoteDirection),
    ptime: m.ptime ?? 20,
    mediaIndex: index,
  };
}

/** What an SDP body says about its audio, without negotiating (logs, direct media). */
export function describeAudio(text: string): { address: string; port: number; codecs: string[]; direction: Direction } {
  const parsed = parse(text);
  const m = parsed.media.find((x) => x.type === 'audio');
  if (!m) throw new SdpNegotiationError('ENOAUDIO', 'no audio stream');
  return {
    address: connectionAddress(parsed, m),
    port: m.port,
    codecs: formatsOf(m).map((f) => f.name || String(f.payloadType)),
    direction: directionOf(parsed, m),
  };
}
