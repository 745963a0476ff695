// Active WAN probes: a TCP connect to each target. An MQTT link can look up for a
// whole keepalive period after the WAN died (a half-open TCP connection); a probe
// that cannot connect within its timeout says so in seconds.
import net from 'node:net';

export interface ProbeTarget {
  host: string;
  port: number;
}

/** Resolves true if a TCP connection to the target opens within timeoutMs. */
export function probeTcp(target: ProbeTarget, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: target.host, port: target.port });
    let settled = false;
    const finish = (ok: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.once('connect', () => finish(true));
    socket.once('error', () => finish(false));
  });
}

/** One round: ok if any target answers (one reachable path is a working WAN). */
export async function probeRound(targets: readonly ProbeTarget[], timeoutMs: number): Promise<boolean> {
  const results = await Promise.all(targets.map((t) => probeTcp(t, timeoutMs)));
  return results.some(Boolean);
}
