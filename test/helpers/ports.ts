// Free loopback ports for peers the tests start. A SIP server listens on UDP and
// TCP with the same port number, so the port must be free for both.
import dgram from 'node:dgram';
import net from 'node:net';
import { readFileSync } from 'node:fs';

const HOST = '127.0.0.1';

// Ports already handed out by this process: the OS may offer a just-closed port
// again before the peer we gave it to has bound it.
const handedOut = new Set<number>();

// Ports are drawn from below the kernel's ephemeral range: a port the OS hands
// out for listen(0) is also one it may give the next outbound socket (a SIPp or
// Kamailio client connection) between our check and the peer's bind, which made
// baresip fail with "Address already in use" in CI.
const EPHEMERAL_FLOOR = ephemeralFloor();

function ephemeralFloor(): number {
  try {
    const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/);
    const n = Number(low);
    return Number.isInteger(n) && n > 12_000 ? n : 32_768;
  } catch {
    return 32_768;
  }
}

function candidatePort(): number {
  // 10000 up to the ephemeral floor: above the well-known and registered
  // services that run on these machines (5060, 1883, 8080, ...).
  const low = 10_000;
  return low + Math.floor(Math.random() * (EPHEMERAL_FLOOR - low));
}

function portFree(kind: 'udp' | 'tcp', port: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (kind === 'udp') {
      const socket = dgram.createSocket('udp4');
      socket.once('error', () => { socket.close(); resolve(false); });
      socket.bind(port, HOST, () => socket.close(() => resolve(true)));
    } else {
      const server = net.createServer();
      server.once('error', () => resolve(false));
      server.listen(port, HOST, () => server.close(() => resolve(true)));
    }
  });
}

/** A port on 127.0.0.1 that is free on both UDP and TCP right now. */
export async function freeUdpTcpPort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = candidatePort();
    if (handedOut.has(port)) continue;
    if ((await portFree('udp', port)) && (await portFree('tcp', port))) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('no port free on both UDP and TCP after 200 attempts');
}
