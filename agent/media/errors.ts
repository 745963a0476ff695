// Errors the media engine throws, told apart by `code` (never by message text).

/** An RTP or RTCP packet that does not follow RFC 3550's layout. */
export class MediaPacketError extends Error {
  readonly code = 'EPACKET';
  readonly reason: string;

  constructor(reason: string, message: string) {
    super(message);
    this.name = 'MediaPacketError';
    this.reason = reason;
  }
}

/**
 * An SDP offer or answer we cannot accept. `status` is the SIP response the call
 * core sends for it: 488 Not Acceptable Here (RFC 3261 §21.4.26), with `warning`
 * as the text of a Warning: 304/305 header when it helps the peer.
 */
export class SdpNegotiationError extends Error {
  /** EMALFORMED: not parseable; ENOAUDIO: no usable audio stream; ENOCODEC: no codec in common. */
  readonly code: 'EMALFORMED' | 'ENOAUDIO' | 'ENOCODEC';
  readonly status = 488;
  readonly warning: number;

  constructor(code: 'EMALFORMED' | 'ENOAUDIO' | 'ENOCODEC', message: string) {
    super(message);
    this.name = 'SdpNegotiationError';
    this.code = code;
    // RFC 3261 §20.43: 304 media type not available, 305 incompatible media format.
    this.warning = code === 'ENOCODEC' ? 305 : 304;
  }
}

/** No even RTP/RTCP port pair could be bound in the configured range. */
export class PortsExhaustedError extends Error {
  readonly code = 'EPORTS';

  constructor(message: string) {
    super(message);
    this.name = 'PortsExhaustedError';
  }
}

/** A WAV file we cannot read (not RIFF/WAVE, or a format we do not handle). */
export class WavFormatError extends Error {
  readonly code = 'EWAVFORMAT';

  constructor(message: string) {
    super(message);
    this.name = 'WavFormatError';
  }
}

/** An operation on a session or relay that is not running (not started or stopped). */
export class MediaStateError extends Error {
  readonly code = 'ESTATE';

  constructor(message: string) {
    super(message);
    this.name = 'MediaStateError';
  }
}

/** A value a caller passed that the media engine cannot use (digit, tone, country...). */
export class MediaArgumentError extends Error {
  readonly code = 'EARGUMENT';

  constructor(message: string) {
    super(message);
    this.name = 'MediaArgumentError';
  }
}
