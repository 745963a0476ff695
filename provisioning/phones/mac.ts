/** 12 lower-case hex digits, separators removed; undefined when `text` is not a MAC. */
export function normalizeMac(text: string): string | undefined {
  const hex = text.replace(/[:-]/g, '').toLowerCase();
  return /^[0-9a-f]{12}$/.test(hex) ? hex : undefined;
}
