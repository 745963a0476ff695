// Call-progress tones per country (ITU-T E.180 and its Supplement 2, "Various
// tones used in national networks"; the US values are the ANSI precise tone plan).
// Cadences are in milliseconds, alternating on/off and repeated; an empty cadence
// is a continuous tone. Levels are per frequency, in dBm0.

export type ToneName = 'dial' | 'ringback' | 'busy' | 'congestion';
export type CountryCode = 'US' | 'UK' | 'DE' | 'FR';

export interface ToneSpec {
  frequencies: readonly number[];
  levelDbm0: number;
  cadenceMs: readonly number[];
}

export const TONE_NAMES: readonly ToneName[] = ['dial', 'ringback', 'busy', 'congestion'];

export const toneTables: Readonly<Record<CountryCode, Readonly<Record<ToneName, ToneSpec>>>> = {
  // North America: dial 350+440, audible ringing 440+480 2 s on 4 s off, busy
  // 480+620 at 60 interruptions/min, reorder (congestion) the same at 120.
  US: {
    dial: { frequencies: [350, 440], levelDbm0: -13, cadenceMs: [] },
    ringback: { frequencies: [440, 480], levelDbm0: -19, cadenceMs: [2000, 4000] },
    busy: { frequencies: [480, 620], levelDbm0: -24, cadenceMs: [500, 500] },
    congestion: { frequencies: [480, 620], levelDbm0: -24, cadenceMs: [250, 250] },
  },
  // United Kingdom (BT SIN 350): dial 350+440; ringing 400+450 double ring
  // 0.4-0.2-0.4-2.0; busy 400 0.375/0.375; congestion ("equipment engaged") 400
  // 0.4-0.35-0.225-0.525.
  UK: {
    dial: { frequencies: [350, 440], levelDbm0: -13, cadenceMs: [] },
    ringback: { frequencies: [400, 450], levelDbm0: -19, cadenceMs: [400, 200, 400, 2000] },
    busy: { frequencies: [400], levelDbm0: -13, cadenceMs: [375, 375] },
    congestion: { frequencies: [400], levelDbm0: -13, cadenceMs: [400, 350, 225, 525] },
  },
  // Germany: 425 Hz throughout; ringing 1 s on 4 s off, busy 0.48/0.48,
  // congestion 0.24/0.24.
  DE: {
    dial: { frequencies: [425], levelDbm0: -13, cadenceMs: [] },
    ringback: { frequencies: [425], levelDbm0: -13, cadenceMs: [1000, 4000] },
    busy: { frequencies: [425], levelDbm0: -13, cadenceMs: [480, 480] },
    congestion: { frequencies: [425], levelDbm0: -13, cadenceMs: [240, 240] },
  },
  // France: 440 Hz throughout; ringing 1.5 s on 3.5 s off, busy 0.5/0.5,
  // congestion 0.25/0.25.
  FR: {
    dial: { frequencies: [440], levelDbm0: -13, cadenceMs: [] },
    ringback: { frequencies: [440], levelDbm0: -13, cadenceMs: [1500, 3500] },
    busy: { frequencies: [440], levelDbm0: -13, cadenceMs: [500, 500] },
    congestion: { frequencies: [440], levelDbm0: -13, cadenceMs: [250, 250] },
  },
};

export function isCountryCode(value: string): value is CountryCode {
  return Object.hasOwn(toneTables, value);
}
