// Numbers, dates and times as sequences of prompt ids (script-en.txt): spoken by
// concatenating short recordings, so one prompt set says any count, time or
// caller number. Pure functions; times are read in the agent's local time zone.

/** A cardinal number, 0–999,999 ("two hundred forty one"). */
export function sayNumber(n: number): string[] {
  if (!Number.isInteger(n) || n < 0 || n > 999_999) throw new RangeError(`cannot say ${n}`);
  if (n >= 1000) {
    const rest = n % 1000;
    return [...sayNumber(Math.floor(n / 1000)), 'thousand', ...(rest > 0 ? sayNumber(rest) : [])];
  }
  if (n >= 100) {
    const rest = n % 100;
    return [`num-${Math.floor(n / 100)}`, 'hundred', ...(rest > 0 ? sayNumber(rest) : [])];
  }
  if (n < 20) return [`num-${n}`];
  const ones = n % 10;
  return [`num-${n - ones}`, ...(ones > 0 ? [`num-${ones}`] : [])];
}

/** An ordinal day of the month, 1–31 ("twenty first"). */
export function sayOrdinal(n: number): string[] {
  if (!Number.isInteger(n) || n < 1 || n > 31) throw new RangeError(`cannot say ordinal ${n}`);
  if (n < 20 || n % 10 === 0) return [`ord-${n}`];
  return [`num-${n - (n % 10)}`, `ord-${n % 10}`];
}

/** A dialled number or caller ID digit by digit; characters that are not digits, * or # are left out. */
export function sayDigits(text: string): string[] {
  const out: string[] = [];
  for (const c of text) {
    if (c >= '0' && c <= '9') out.push(`num-${c}`);
    else if (c === '*') out.push('star');
    else if (c === '#') out.push('pound');
  }
  return out;
}

/** Clock time, 12-hour: "ten oh five P M", "three o'clock A M". */
export function sayTime(date: Date): string[] {
  const h24 = date.getHours();
  const minutes = date.getMinutes();
  const h12 = h24 % 12 === 0 ? 12 : h24 % 12;
  const out = sayNumber(h12);
  if (minutes === 0) out.push('oclock');
  else if (minutes < 10) out.push('oh', ...sayNumber(minutes));
  else out.push(...sayNumber(minutes));
  out.push(h24 < 12 ? 'am' : 'pm');
  return out;
}

function startOfDay(d: Date): number {
  return new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
}

/** The day: "today", "yesterday", or "Tuesday March third". */
export function sayDay(date: Date, now: Date): string[] {
  const days = Math.round((startOfDay(now) - startOfDay(date)) / 86_400_000);
  if (days === 0) return ['today'];
  if (days === 1) return ['yesterday'];
  return [`day-${date.getDay()}`, `month-${date.getMonth() + 1}`, ...sayOrdinal(date.getDate())];
}

/** "Received today at ten oh five P M from one zero zero one". */
export function sayEnvelope(receivedAt: Date, caller: string, now: Date): string[] {
  const from = sayDigits(caller);
  return ['received', ...sayDay(receivedAt, now), 'at', ...sayTime(receivedAt), 'from', ...(from.length > 0 ? from : ['unknown-caller'])];
}

/** "3 new messages" / "1 old message" / "no saved messages". */
export function sayCount(count: number, singular: string, plural: string): string[] {
  if (count === 0) return ['no', plural];
  return [...sayNumber(count), count === 1 ? singular : plural];
}
