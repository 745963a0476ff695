// Phone configuration templates (provisioning/templates): plain files with
// {{placeholders}}. Every value is escaped for the file's format, so a display name
// cannot end a line of a Yealink file or an attribute of an XML one.
import { readFileSync } from 'node:fs';

export type TemplateFormat = 'cfg-lines' | 'xml';

/** What a template may use. Unknown placeholders are an error when the template loads. */
export const TEMPLATE_FIELDS = [
  'mac',
  'extension',
  'auth_user',
  'password',
  'display_name',
  'label',
  'sip_server',
  'sip_port',
  'domain',
  'voicemail_number',
  'ntp_server',
  'time_zone',
  'tz_offset_hours',
  'tz_offset_minutes',
  'tz_offset_seconds',
  'gs_time_zone',
] as const;
export type TemplateField = (typeof TEMPLATE_FIELDS)[number];
export type TemplateValues = Record<TemplateField, string>;

export class TemplateError extends Error {
  readonly code = 'ETEMPLATE';
}

const PLACEHOLDER = /\{\{\s*([a-z_]+)\s*\}\}/g;

function escapeXml(v: string): string {
  return v.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

function escapeLine(v: string): string {
  // A key = value file has no quoting: a line break would start a new setting.
  return v.replace(/[\r\n\t]+/g, ' ');
}

export class Template {
  readonly name: string;
  readonly format: TemplateFormat;
  readonly #text: string;

  constructor(name: string, text: string, format: TemplateFormat) {
    this.name = name;
    this.format = format;
    this.#text = text;
    for (const m of text.matchAll(PLACEHOLDER)) {
      if (!(TEMPLATE_FIELDS as readonly string[]).includes(m[1] ?? '')) throw new TemplateError(`template ${name}: unknown placeholder {{${m[1]}}} (known: ${TEMPLATE_FIELDS.join(', ')})`);
    }
  }

  static load(file: string, format: TemplateFormat): Template {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new TemplateError(`cannot read the phone template ${file}: ${(err as Error).message}`);
    }
    return new Template(file, text, format);
  }

  render(values: TemplateValues): string {
    const escape = this.format === 'xml' ? escapeXml : escapeLine;
    return this.#text.replace(PLACEHOLDER, (_, key: string) => escape(values[key as TemplateField]));
  }
}
