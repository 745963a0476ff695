// Phones take their time zone as a UTC offset in a vendor's own form; the config names
// an IANA zone. The standard (winter) offset is the smaller of January's and July's in
// both hemispheres; the phones apply daylight saving time themselves.

export class TimeZoneError extends Error {
  readonly code = 'ETIMEZONE';
}

function offsetMinutes(zone: string, at: Date): number {
  const part = new Intl.DateTimeFormat('en-US', { timeZone: zone, timeZoneName: 'longOffset' }).formatToParts(at).find((p) => p.type === 'timeZoneName')?.value ?? 'GMT';
  const m = /^GMT(?:([+-])(\d{2}):(\d{2}))?$/.exec(part);
  if (!m) throw new TimeZoneError(`cannot read the UTC offset of ${zone} ("${part}")`);
  if (!m[1]) return 0;
  const minutes = Number(m[2]) * 60 + Number(m[3]);
  return m[1] === '-' ? -minutes : minutes;
}

export function standardOffsetMinutes(zone: string, year = new Date().getUTCFullYear()): number {
  try {
    return Math.min(offsetMinutes(zone, new Date(Date.UTC(year, 0, 1))), offsetMinutes(zone, new Date(Date.UTC(year, 6, 1))));
  } catch (err) {
    if (err instanceof RangeError) throw new TimeZoneError(`provisioning.phones.time_zone: "${zone}" is not a known time zone (IANA name, e.g. Europe/Berlin)`);
    throw err;
  }
}

/** "+1", "-5", "+5:30": the form Yealink's local_time.time_zone takes. */
export function offsetHours(minutes: number): string {
  const sign = minutes < 0 ? '-' : '+';
  const abs = Math.abs(minutes);
  const h = Math.floor(abs / 60);
  const m = abs % 60;
  return m === 0 ? `${sign}${h}` : `${sign}${h}:${String(m).padStart(2, '0')}`;
}
