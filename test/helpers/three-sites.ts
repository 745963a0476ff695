// Three hosts in network namespaces (needs root): site A and site B (an agent each,
// their phones on the namespace's own loopback) and "central" (Mosquitto and
// `branchctl serve`), which also routes between the sites' WAN links:
//
//   blt-a  wa 198.18.1.2 ──── ca 198.18.1.1 ┐
//                                           blt-c  (Mosquitto :1883, branchctl serve, ip_forward)
//   blt-b  wb 198.18.2.2 ──── cb 198.18.2.1 ┘
//
// Used by test/integration/sites-e2e.test.ts and bench/failover.ts. Everything is
// created inside the namespaces (the veths too), so deleting them leaves nothing.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { deepMerge, REPO_ROOT, startAgent, type AgentHandle, type ExtensionSpec, type LogLine } from './agent.ts';
import { stopProcess, track } from './proc.ts';

export const NS = { a: 'blt-a', b: 'blt-b', c: 'blt-c' } as const;
export const DOMAIN = 'branchline.test';
export const B_DID = '+15550202001';
const BRANCHCTL = path.join(REPO_ROOT, 'controller', 'cli.ts');

export function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: 20_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${cmd} ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout)));
  });
}

export const ip = (...args: string[]): Promise<string> => run('ip', args);

export async function deleteNamespaces(): Promise<void> {
  for (const ns of Object.values(NS)) await ip('netns', 'del', ns).catch(() => undefined);
}

export async function createNamespaces(): Promise<void> {
  await deleteNamespaces();
  for (const ns of Object.values(NS)) {
    await ip('netns', 'add', ns);
    await ip('-n', ns, 'link', 'set', 'lo', 'up');
  }
  for (const [site, net] of [['a', 1], ['b', 2]] as const) {
    const siteNs = NS[site];
    // Created inside central, one end moved to the site: nothing is left in the root namespace.
    await ip('-n', NS.c, 'link', 'add', `c${site}`, 'type', 'veth', 'peer', 'name', `w${site}`);
    await ip('-n', NS.c, 'link', 'set', `w${site}`, 'netns', siteNs);
    await ip('-n', NS.c, 'addr', 'add', `198.18.${net}.1/24`, 'dev', `c${site}`);
    await ip('-n', siteNs, 'addr', 'add', `198.18.${net}.2/24`, 'dev', `w${site}`);
    await ip('-n', NS.c, 'link', 'set', `c${site}`, 'up');
    await ip('-n', siteNs, 'link', 'set', `w${site}`, 'up');
    await ip('-n', siteNs, 'route', 'add', 'default', 'via', `198.18.${net}.1`);
  }
  await run('ip', ['netns', 'exec', NS.c, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
}

export function branchctl(args: string[]): Promise<string> {
  return run('ip', ['netns', 'exec', NS.c, process.execPath, BRANCHCTL, ...args, '--broker', 'mqtt://127.0.0.1:1883']);
}

export async function recordsAtController(site: string): Promise<Array<{ id: string }>> {
  return JSON.parse(await branchctl(['records', '--site', site, '--limit', '100000', '--json'])) as Array<{ id: string }>;
}

/** Mosquitto and `branchctl serve` (state under `work`) in central; stop() ends both. */
export async function startCentral(work: string): Promise<{ stop(): Promise<void> }> {
  const conf = path.join(work, 'mosquitto.conf');
  await writeFile(conf, 'listener 1883 0.0.0.0\nallow_anonymous true\nset_tcp_nodelay true\n');
  const broker: ChildProcess = track(spawn('ip', ['netns', 'exec', NS.c, 'mosquitto', '-c', conf], { stdio: 'ignore' }));
  await new Promise((r) => setTimeout(r, 300));
  const controller: ChildProcess = track(spawn('ip', ['netns', 'exec', NS.c, process.execPath, BRANCHCTL, 'serve', '--broker', 'mqtt://127.0.0.1:1883', '--state', path.join(work, 'controller')], { stdio: 'ignore', cwd: REPO_ROOT }));
  return {
    stop: async () => {
      await stopProcess(controller).catch(() => undefined);
      await stopProcess(broker).catch(() => undefined);
    },
  };
}

function siteConfig(site: 'a' | 'b'): Record<string, unknown> {
  const net = site === 'a' ? 1 : 2;
  return {
    site: { id: `site-${site}` },
    sip: { udp: '0.0.0.0:5060', tcp: '0.0.0.0:5060', auth: { algorithms: ['MD5'] } },
    media: { policy: 'direct', bind_address: '0.0.0.0' },
    mqtt: { url: `mqtt://198.18.${net}.1:1883`, reconnect_period: 0.2, keepalive: 5 },
    // One record in flight at a time: the drain after the outage lasts long enough to be killed in.
    sync: { ack_timeout: 2, window: 1 },
    // Fast detection: a probe round every 0.5 s; survivable after 1 s of trouble.
    health: { telemetry_period: 3600, probe_interval: 0.5, probe_timeout: 0.4, enter_after: 1, return_after: 2 },
    peers: { sip_address: `198.18.${net}.2:5060`, no_response_timeout: 0.4 },
  };
}

/** Site A (1001, 1002; a sim line card on which 2001's DID answers) or site B (2001 with that DID; 2002 with a mailbox, no DID). */
export async function startSite(site: 'a' | 'b', stateDir?: string, overrides: Record<string, unknown> = {}): Promise<AgentHandle> {
  // Deep-merged over the site's config (the benchmark slows the WAN probes down).
  const common = deepMerge(siteConfig(site), overrides);
  const h =
    site === 'a'
      ? await startAgent({
          netns: NS.a,
          udpPort: 5060,
          tcpPort: 5060,
          domain: DOMAIN,
          ...(stateDir ? { stateDir } : {}),
          extensions: [
            { number: '1001', password: 'pw-1001' },
            { number: '1002', password: 'pw-1002' },
          ],
          extraConfig: {
            ...common,
            // The sim PSTN: 2001's DID answers (as B's line would) after 0.2 s.
            linecards: [{ driver: 'sim', name: 'pstn', type: 'e1', control: '127.0.0.1:5099', subscribers: [{ number: B_DID, behaviour: 'answer', answer_after: 0.2, audio: 'silence' }] }],
          },
        })
      : await startAgent({
          netns: NS.b,
          udpPort: 5060,
          tcpPort: 5060,
          domain: DOMAIN,
          extensions: [
            { number: '2001', password: 'pw-2001' },
            // No DID: when B is unreachable, A takes the message and forwards it.
            // ExtensionSpec has no voicemail key; the config takes it.
            { number: '2002', password: 'pw-2002', voicemail: { pin: '2468' } } as ExtensionSpec,
          ],
          extraConfig: { ...common, dids: [{ number: B_DID, extension: '2001' }] },
        });
  return h;
}

/** A log line's time in epoch ms. */
export function logTime(l: LogLine): number {
  return typeof l['time'] === 'number' ? l['time'] : Date.parse(String(l['time']));
}
