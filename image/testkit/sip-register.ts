// A minimal UDP phone for timing: sends REGISTER until the registrar answers at all
// (that instant is "first REGISTER answered"), then completes MD5 digest auth and
// returns when the 200 arrives. The integration tests register with SIPp instead.
import { createHash, randomBytes } from 'node:crypto';
import dgram from 'node:dgram';

export interface RegisterOptions {
  host: string;
  port: number;
  domain: string;
  user: string;
  password: string;
  /** Resend the first REGISTER this often until something answers. */
  retryMs?: number;
  timeoutMs: number;
}

export interface RegisterTimes {
  /** performance.now() of the first response of any kind. */
  firstAnswerAt: number;
  firstStatus: number;
  /** performance.now() of the 200. */
  registeredAt: number;
}

const md5 = (s: string): string => createHash('md5').update(s).digest('hex');

function param(header: string, name: string): string | undefined {
  return new RegExp(`${name}="?([^",]+)"?`, 'i').exec(header)?.[1];
}

export function registerOnce(opts: RegisterOptions): Promise<RegisterTimes> {
  const socket = dgram.createSocket('udp4');
  const callId = `${randomBytes(8).toString('hex')}@bench`;
  const tag = randomBytes(4).toString('hex');
  let cseq = 1;
  let firstAnswerAt = 0;
  let firstStatus = 0;
  return new Promise((resolve, reject) => {
    let retry: NodeJS.Timeout | undefined;
    const finish = (err: Error | null, times?: RegisterTimes): void => {
      clearInterval(retry);
      clearTimeout(deadline);
      socket.close();
      if (err) reject(err);
      else resolve(times as RegisterTimes);
    };
    const deadline = setTimeout(() => finish(new Error(`no registration at ${opts.host}:${opts.port} within ${opts.timeoutMs} ms`)), opts.timeoutMs);
    const request = (auth?: string): Buffer => {
      const local = socket.address().port;
      const lines = [
        `REGISTER sip:${opts.domain} SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${local};branch=z9hG4bK${randomBytes(6).toString('hex')};rport`,
        'Max-Forwards: 70',
        `From: <sip:${opts.user}@${opts.domain}>;tag=${tag}`,
        `To: <sip:${opts.user}@${opts.domain}>`,
        `Call-ID: ${callId}`,
        `CSeq: ${cseq} REGISTER`,
        `Contact: <sip:${opts.user}@127.0.0.1:${local}>`,
        'Expires: 600',
        'User-Agent: branchline-bench',
      ];
      if (auth) lines.push(`Authorization: ${auth}`);
      lines.push('Content-Length: 0', '', '');
      return Buffer.from(lines.join('\r\n'));
    };
    socket.on('message', (msg) => {
      const text = msg.toString();
      const status = Number(/^SIP\/2\.0 (\d{3})/.exec(text)?.[1] ?? 0);
      if (status < 200 || !text.includes(callId)) return;
      // The first REGISTER went out many times: late answers to it are not news.
      if (Number(/^CSeq: *(\d+)/im.exec(text)?.[1] ?? 0) !== cseq) return;
      if (firstAnswerAt === 0) {
        firstAnswerAt = performance.now();
        firstStatus = status;
        clearInterval(retry);
      }
      if (status === 200) return finish(null, { firstAnswerAt, firstStatus, registeredAt: performance.now() });
      if (status !== 401 || cseq > 1) return finish(new Error(`REGISTER answered ${status}`));
      const challenge = /^WWW-Authenticate: *(.*)$/im.exec(text)?.[1] ?? '';
      const realm = param(challenge, 'realm') ?? opts.domain;
      const nonce = param(challenge, 'nonce') ?? '';
      const uri = `sip:${opts.domain}`;
      const cnonce = randomBytes(4).toString('hex');
      const ha1 = md5(`${opts.user}:${realm}:${opts.password}`);
      const ha2 = md5(`REGISTER:${uri}`);
      const response = md5(`${ha1}:${nonce}:00000001:${cnonce}:auth:${ha2}`);
      cseq++;
      socket.send(request(`Digest username="${opts.user}", realm="${realm}", nonce="${nonce}", uri="${uri}", response="${response}", algorithm=MD5, qop=auth, nc=00000001, cnonce="${cnonce}"`), opts.port, opts.host);
    });
    socket.bind(0, '127.0.0.1', () => {
      const first = request();
      const send = (): void => socket.send(first, opts.port, opts.host);
      send();
      retry = setInterval(send, opts.retryMs ?? 10);
    });
  });
}
