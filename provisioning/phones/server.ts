// Phone auto-provisioning: an HTTP (and, with a certificate, HTTPS) server that hands
// each allowed phone its configuration file, rendered from the vendor's template with
// the phone's own generated SIP credentials. Only files of MACs on the allow-list
// exist; no request path ever reaches the file system.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { parseListen } from '../../agent/config/load.ts';
import type { AgentConfig, PhoneDevice } from '../../agent/config/types.ts';
import { ensurePhoneCredentials, type PhoneCredential } from './credentials.ts';
import { normalizeMac } from './mac.ts';
import type { Template, TemplateValues } from './templates.ts';
import { offsetHours, standardOffsetMinutes } from './time-zone.ts';
import { defaultTemplatesDir, loadTemplates, VENDOR_FILES, type PhoneFile } from './vendors.ts';

export interface PhoneProvisioningOptions {
  config: Pick<AgentConfig, 'provisioning' | 'sip' | 'extensions'>;
  /** Where the generated phone passwords are kept (state_dir/provisioning). */
  credentialsDir: string;
  templatesDir?: string;
  logger: Logger;
}

export class PhoneConfigError extends Error {
  readonly code = 'EPHONES';
}

interface Route {
  device: PhoneDevice & { mac: string };
  file: PhoneFile;
}

// Phones ask for flat names: letters, digits, dot, dash, underscore. Anything else
// (slashes, "..", percent-escapes) is refused before any lookup.
const SAFE_NAME = /^[A-Za-z0-9._-]{1,64}$/;

export class PhoneProvisioning {
  readonly #o: PhoneProvisioningOptions;
  readonly #routes = new Map<string, Route>();
  #credentials = new Map<string, PhoneCredential>();
  #templates = new Map<string, Template>();
  #servers: Array<http.Server | https.Server> = [];
  #base: Omit<TemplateValues, 'mac' | 'extension' | 'auth_user' | 'password' | 'display_name' | 'label'> | undefined;

  constructor(options: PhoneProvisioningOptions) {
    this.#o = options;
  }

  get enabled(): boolean {
    const p = this.#o.config.provisioning.phones;
    return p.http !== undefined || p.https !== undefined;
  }

  /**
   * Checks the phone list, loads the templates and makes the phones' credentials.
   * Returns the accounts the registrar must accept. Synchronous and before SIP starts:
   * a phone must never be told a password the registrar does not know.
   */
  prepare(): Array<{ number: string; name?: string; password: string }> {
    const { config } = this.#o;
    const phones = config.provisioning.phones;
    const devices: Array<PhoneDevice & { mac: string }> = [];
    const byMac = new Map<string, number>();
    const byExtension = new Map<string, number>();
    const configured = new Set(config.extensions.map((e) => e.number));
    phones.devices.forEach((d, i) => {
      const mac = normalizeMac(d.mac) as string; // the schema's pattern admits only MACs
      const key = `provisioning.phones.devices[${i}]`;
      if (byMac.has(mac)) throw new PhoneConfigError(`${key}.mac: ${d.mac} is already devices[${byMac.get(mac)}]`);
      if (byExtension.has(d.extension)) throw new PhoneConfigError(`${key}.extension: ${d.extension} is already devices[${byExtension.get(d.extension)}]`);
      if (configured.has(d.extension)) throw new PhoneConfigError(`${key}.extension: ${d.extension} is also in extensions; a provisioned phone's password is generated, so list it in one place only`);
      byMac.set(mac, i);
      byExtension.set(d.extension, i);
      devices.push({ ...d, mac });
    });
    if (devices.length === 0) return [];
    this.#templates = loadTemplates(this.#o.templatesDir ?? defaultTemplatesDir());
    const offset = standardOffsetMinutes(phones.time_zone);
    this.#base = {
      sip_server: phones.sip_server ?? config.sip.domain,
      sip_port: String(config.sip.udp.port),
      domain: config.sip.domain,
      voicemail_number: phones.voicemail_number,
      ntp_server: phones.ntp_server,
      time_zone: phones.time_zone,
      tz_offset_hours: offsetHours(offset),
      tz_offset_minutes: String(offset),
      tz_offset_seconds: String(offset * 60),
      gs_time_zone: String(720 + offset),
    };
    const { credentials, created } = ensurePhoneCredentials(this.#o.credentialsDir, devices);
    this.#credentials = credentials;
    if (created.length > 0) this.#o.logger.info({ event: 'phones.credentials_created', macs: created }, `SIP credentials generated for ${created.length} phone(s)`);
    for (const device of devices) {
      for (const file of VENDOR_FILES[device.vendor]) this.#routes.set(file.name(device.mac), { device, file });
    }
    return devices.map((d) => ({ number: d.extension, ...(d.name ? { name: d.name } : {}), password: (credentials.get(d.mac) as PhoneCredential).password }));
  }

  /** The configuration file a phone would get; undefined for a name no allowed phone has. */
  render(name: string): { body: string; contentType: string; mac: string } | undefined {
    const route = this.#routes.get(name.toLowerCase());
    const base = this.#base;
    if (!route || !base) return undefined;
    const { device, file } = route;
    const cred = this.#credentials.get(device.mac) as PhoneCredential;
    const template = this.#templates.get(file.template) as Template;
    const display = device.name ?? device.extension;
    const body = template.render({ ...base, mac: device.mac, extension: device.extension, auth_user: device.extension, password: cred.password, display_name: display, label: display });
    return { body, contentType: file.contentType, mac: device.mac };
  }

  async start(): Promise<void> {
    const phones = this.#o.config.provisioning.phones;
    if (!this.enabled) return;
    const handler = (req: http.IncomingMessage, res: http.ServerResponse, scheme: string): void => this.#handle(req, res, scheme);
    if (phones.http) await this.#listen(http.createServer((q, s) => handler(q, s, 'http')), phones.http, 'http');
    if (phones.https) {
      const tls = { cert: readFileSync(phones.https.cert), key: readFileSync(phones.https.key) };
      await this.#listen(https.createServer(tls, (q, s) => handler(q, s, 'https')), phones.https.listen, 'https');
    }
  }

  /** Bound addresses, for logs and tests. */
  get addresses(): Array<{ scheme: 'http' | 'https'; port: number; address: string }> {
    return this.#servers.map((s) => {
      const a = s.address() as AddressInfo;
      return { scheme: s instanceof https.Server ? 'https' : 'http', port: a.port, address: a.address };
    });
  }

  async #listen(server: http.Server | https.Server, listen: string, scheme: string): Promise<void> {
    const { host, port } = parseListen(listen);
    // Phones send one small request each; slow or idle clients are cut short.
    server.requestTimeout = 10_000;
    server.headersTimeout = 5_000;
    server.keepAliveTimeout = 2_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.#servers.push(server);
    const a = server.address() as AddressInfo;
    this.#o.logger.info({ event: 'phones.listening', scheme, address: a.address, port: a.port, phones: this.#credentials.size }, `phone provisioning on ${scheme}://${listen}`);
  }

  #handle(req: http.IncomingMessage, res: http.ServerResponse, scheme: string): void {
    const log = this.#o.logger;
    const remote = req.socket.remoteAddress;
    const send = (status: number, body: string, contentType = 'text/plain; charset=utf-8'): void => {
      res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      send(405, 'method not allowed\n');
      return;
    }
    const rawPath = (req.url ?? '/').split('?')[0] ?? '/';
    const name = rawPath.replace(/^\/+/, '');
    if (!SAFE_NAME.test(name) || name.includes('..')) {
      log.warn({ event: 'phones.bad_path', remote, path: rawPath.slice(0, 200), scheme }, 'refused a provisioning request for a path outside the phone files');
      send(400, 'bad file name\n');
      return;
    }
    const file = this.render(name);
    if (!file) {
      log.info({ event: 'phones.unknown_file', remote, file: name, scheme }, 'no such phone file (MAC not on the allow-list, or not a file this vendor asks for)');
      send(404, 'not found\n');
      return;
    }
    // The body holds the phone's password: log who fetched what, never the content.
    log.info({ event: 'phones.fetched', remote, file: name, mac: file.mac, scheme }, 'phone configuration served');
    send(200, file.body, file.contentType);
  }

  async stop(): Promise<void> {
    const servers = this.#servers;
    this.#servers = [];
    await Promise.all(
      servers.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.close(() => resolve());
            s.closeAllConnections();
          }),
      ),
    );
  }
}
