// Digit manipulation for outbound routes and E.164 normalisation. The numbering plan
// (country code, area code, prefixes) is the site's: a box in Leeds and one in Lyon
// dial the same digits to mean different numbers.

export interface NumberingPlan {
  /** Without '+', e.g. "44"; needed for E.164 normalisation. */
  countryCode?: string;
  /** Without the national prefix, e.g. "113"; local numbers get it. */
  areaCode?: string;
  /** Dialled before a country code, e.g. "00" (most of the world) or "011" (NANP). */
  internationalPrefix: string;
  /** Dialled before an area code, e.g. "0" (UK, FR, DE) or "1" (NANP). */
  nationalPrefix: string;
  /** Numbers of at most this many digits are local: the area code goes in front. */
  localDigits: number;
}

export class NumberFormatError extends Error {
  readonly code = 'ENUMBER';
}

/**
 * The number in E.164 (`+` and up to 15 digits), by these rules in order:
 * `+…` stays; the international prefix becomes `+`; the national prefix becomes `+`
 * and the country code; a local number (≤ localDigits) gets `+`, country and area
 * code; anything else is a national number and gets `+` and the country code.
 */
export function toE164(number: string, plan: NumberingPlan): string {
  if (!/^\+?[0-9]+$/.test(number)) throw new NumberFormatError(`"${number}" is not a telephone number`);
  let e164: string;
  if (number.startsWith('+')) e164 = number;
  else if (plan.internationalPrefix !== '' && number.startsWith(plan.internationalPrefix)) e164 = `+${number.slice(plan.internationalPrefix.length)}`;
  else {
    if (plan.countryCode === undefined) throw new NumberFormatError(`cannot make "${number}" E.164: trunking.country_code is not set`);
    if (plan.nationalPrefix !== '' && number.startsWith(plan.nationalPrefix)) e164 = `+${plan.countryCode}${number.slice(plan.nationalPrefix.length)}`;
    else if (number.length <= plan.localDigits) {
      if (plan.areaCode === undefined) throw new NumberFormatError(`cannot make local number "${number}" E.164: trunking.area_code is not set`);
      e164 = `+${plan.countryCode}${plan.areaCode}${number}`;
    } else e164 = `+${plan.countryCode}${number}`;
  }
  if (e164.length < 3 || e164.length > 16) throw new NumberFormatError(`"${number}" gives ${e164}, which is not 1 to 15 digits`);
  return e164;
}

/** Whether two numbers are the same line: equal as dialled, or equal once both are E.164. */
export function sameNumber(a: string, b: string, plan: NumberingPlan): boolean {
  if (a === b) return true;
  try {
    return toE164(a, plan) === toE164(b, plan);
  } catch {
    return false;
  }
}

export interface DigitManipulation {
  /** Leading digits to remove (e.g. 1 for an outside-line "9"). */
  strip: number;
  /** Digits to put in front after stripping. */
  prefix: string;
  /** Normalise the result to E.164 after strip and prefix. */
  e164: boolean;
}

/** Strip, then prefix, then (when asked) E.164. Throws NumberFormatError when nothing is left to dial. */
export function manipulateDigits(number: string, how: DigitManipulation, plan: NumberingPlan): string {
  if (how.strip > number.length) throw new NumberFormatError(`cannot strip ${how.strip} digits from "${number}"`);
  const out = how.prefix + number.slice(how.strip);
  if (out === '') throw new NumberFormatError(`nothing left to dial of "${number}" after stripping ${how.strip} digits`);
  return how.e164 ? toE164(out, plan) : out;
}
