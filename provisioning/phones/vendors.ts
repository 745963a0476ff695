// Which file each vendor's phone asks for, and which template answers it. Phones
// name files after their MAC in lower-case hex without separators.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PhoneVendor } from '../../agent/config/types.ts';
import { Template, type TemplateFormat } from './templates.ts';

export interface PhoneFile {
  /** The file name as the phone requests it, for this MAC (12 lower-case hex digits). */
  name: (mac: string) => string;
  template: string;
  format: TemplateFormat;
  contentType: string;
}

export const VENDOR_FILES: Record<PhoneVendor, PhoneFile[]> = {
  // Yealink T4x/T5x: <mac>.cfg after the common y0000000000xx.cfg (not served: all is per MAC).
  yealink: [{ name: (mac) => `${mac}.cfg`, template: 'yealink.cfg', format: 'cfg-lines', contentType: 'text/plain; charset=utf-8' }],
  // Polycom UC: the master file <mac>.cfg names the phone's own file in CONFIG_FILES.
  polycom: [
    { name: (mac) => `${mac}.cfg`, template: 'polycom-master.cfg', format: 'xml', contentType: 'application/xml; charset=utf-8' },
    { name: (mac) => `phone-${mac}.cfg`, template: 'polycom-phone.cfg', format: 'xml', contentType: 'application/xml; charset=utf-8' },
  ],
  // Grandstream GXP/GRP/HT: cfg<mac>.xml.
  grandstream: [{ name: (mac) => `cfg${mac}.xml`, template: 'grandstream.xml', format: 'xml', contentType: 'application/xml; charset=utf-8' }],
};

/** The shipped templates folder (provisioning/templates; in the image at the same place). */
export function defaultTemplatesDir(): string {
  return fileURLToPath(new URL('../templates/', import.meta.url));
}

/** Loads every template once, at start: a broken template stops the start, not a phone's boot. */
export function loadTemplates(dir: string): Map<string, Template> {
  const out = new Map<string, Template>();
  for (const files of Object.values(VENDOR_FILES)) {
    for (const f of files) if (!out.has(f.template)) out.set(f.template, Template.load(path.join(dir, f.template), f.format));
  }
  return out;
}
