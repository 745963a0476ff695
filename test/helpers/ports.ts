// Free loopback ports for peers the tests start. A SIP server listens on UDP and
// TCP with the same port number, so the port must be free for both.
import dgram from 'node:dgram';
import net from 'node:net';

const HOST = '127.0.0.1';

// Ports already handed out by this process: the OS may offer a just-closed port
// again before the peer we gave it to has bound it.
const handedOut = new Set<number>();

function tcpPortFromOs(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
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
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await tcpPortFromOs();
    if (handedOut.has(port)) continue;
    if ((await portFree('udp', port)) && (await portFree('tcp', port))) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('no port free on both UDP and TCP after 50 attempts');
}
