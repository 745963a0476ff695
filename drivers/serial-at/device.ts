// One open serial device (serialport): bytes in, bytes out, and a single `lost`
// notice when the device goes away underneath us (USB unplugged, pty closed) as
// opposed to us closing it.

import { stat } from 'node:fs';
import { SerialPort } from 'serialport';

// A pty whose other end went away does not always wake a pending read (no EIO until
// someone polls for it), and a USB adapter's node vanishes from /dev when unplugged:
// watching the path catches both within this long.
const PRESENCE_CHECK_MS = 250;

export interface DeviceHandlers {
  data(bytes: Buffer): void;
  lost(reason: string): void;
}

export class SerialDevice {
  readonly path: string;
  readonly #port: SerialPort;
  #closing = false;
  #lost = false;
  #presence: NodeJS.Timeout | undefined;

  private constructor(path: string, port: SerialPort) {
    this.path = path;
    this.#port = port;
  }

  /** Opens `path` raw at `baudRate`; rejects with the system's reason (ENOENT, EACCES...). */
  static open(path: string, baudRate: number, handlers: DeviceHandlers): Promise<SerialDevice> {
    const port = new SerialPort({ path, baudRate, autoOpen: false, hupcl: false });
    const device = new SerialDevice(path, port);
    return new Promise((resolve, reject) => {
      port.open((err) => {
        if (err) {
          reject(err);
          return;
        }
        port.on('data', (bytes: Buffer) => handlers.data(bytes));
        const lost = (reason: string): void => {
          if (device.#closing || device.#lost) return;
          device.#lost = true;
          handlers.lost(reason);
        };
        port.on('close', (closeErr?: Error) => lost(closeErr ? `device closed: ${closeErr.message}` : 'device closed'));
        port.on('end', () => lost('device reached end of file'));
        port.on('error', (e: Error) => lost(`device error: ${e.message}`));
        device.#presence = setInterval(() => {
          stat(path, (statErr) => {
            if (statErr?.code === 'ENOENT') {
              lost('device node disappeared');
              void device.close();
            }
          });
        }, PRESENCE_CHECK_MS);
        device.#presence.unref();
        resolve(device);
      });
    });
  }

  write(bytes: Buffer): void {
    if (this.#closing || this.#lost) return;
    this.#port.write(bytes);
  }

  /** Resolves once everything written so far has gone to the device. */
  drain(): Promise<void> {
    return new Promise((resolve) => {
      if (this.#closing || this.#lost || !this.#port.isOpen) return resolve();
      this.#port.drain(() => resolve());
    });
  }

  close(): Promise<void> {
    this.#closing = true;
    clearInterval(this.#presence);
    return new Promise((resolve) => {
      if (!this.#port.isOpen) return resolve();
      this.#port.close(() => resolve());
    });
  }
}
