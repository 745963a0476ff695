// What the rest of the agent (the call core, voicemail) uses from the media
// engine. Internals (packet layouts, Goertzel, tables) stay importable from their
// own modules for tests and tools.
export { MediaEngine, type MediaConfig, type SessionOptions } from './engine.ts';
export { RtpSession, type RtpEndpoint, type RtpSessionStats, type PlaybackOutcome } from './rtp-session.ts';
export { MediaRelay, type MediaPolicy, type RelayStats } from './relay.ts';
export {
  acceptAnswer,
  answerOffer,
  createOffer,
  describeAudio,
  SdpOrigin,
  type Direction,
  type LocalMedia,
  type NegotiatedMedia,
} from './sdp.ts';
export { SdpNegotiationError, PortsExhaustedError, MediaStateError, MediaArgumentError, WavFormatError } from './errors.ts';
export type { DigitEvent, DtmfDigit } from './telephone-event.ts';
export { PcmSource, SilenceSource, SequenceSource, type AudioSource } from './audio-source.ts';
export { callProgressTone, dtmfTone, ToneSource } from './tone-generator.ts';
export type { CountryCode, ToneName } from './tone-tables.ts';
export { readWavFile, writeWavFile, decodeWav, encodeWav, WavFileWriter, type WavAudio, type WavEncoding } from './wav.ts';
export type { CodecName } from './g711.ts';
