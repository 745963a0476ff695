// Micro-benchmark of the SIP stack: OPTIONS over UDP on loopback from a Node client
// (in a worker thread, so client and stack each get a core) to a SipStack whose TU
// answers 200 at once. Prints requests/s, latency, and the heap each completed
// transaction costs while it waits out Timer J (32 s at the default T1, so every
// request of the run is still held at the end). Figures only; no pass/fail.
//
//   bash scripts/with-node.sh node bench/sip-stack.ts [seconds=5] [window=200]

import dgram from 'node:dgram';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import v8 from 'node:v8';
import vm from 'node:vm';
import pino from 'pino';
import { SipStack } from '../agent/sip/stack.ts';

interface ClientJob {
  port: number;
  seconds: number;
  window: number;
}

interface ClientResult {
  sent: number;
  answered: number;
  elapsedMs: number;
  latenciesMs: number[];
  responseBytes: number;
}

function options(port: number, n: number): Buffer {
  return Buffer.from(
    'OPTIONS sip:bench@127.0.0.1 SIP/2.0\r\n' +
      `Via: SIP/2.0/UDP 127.0.0.1:${port};branch=z9hG4bKbench${n.toString(36)}x${process.pid};rport\r\n` +
      'Max-Forwards: 70\r\n' +
      'From: <sip:bench@127.0.0.1>;tag=bench\r\n' +
      'To: <sip:bench@127.0.0.1>\r\n' +
      `Call-ID: bench-${n}\r\n` +
      'CSeq: 1 OPTIONS\r\n' +
      'Content-Length: 0\r\n\r\n',
  );
}

/** Keeps `window` requests in flight for `seconds`, each answered one replaced by a new one. */
async function runClient(job: ClientJob): Promise<ClientResult> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  const localPort = socket.address().port;
  const sentAt = new Map<number, number>();
  const latencies: number[] = [];
  let next = 0;
  let answered = 0;
  let responseBytes = 0;
  const started = performance.now();
  const deadline = started + job.seconds * 1000;
  const sendOne = (): void => {
    const n = next++;
    sentAt.set(n, performance.now());
    socket.send(options(localPort, n), job.port, '127.0.0.1');
  };
  return new Promise((resolve) => {
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      socket.close();
      resolve({ sent: next, answered, elapsedMs: performance.now() - started, latenciesMs: latencies, responseBytes });
    };
    socket.on('message', (msg) => {
      const m = /Call-ID: bench-(\d+)/.exec(msg.toString('latin1'));
      const n = m ? Number(m[1]) : -1;
      const t0 = sentAt.get(n);
      if (t0 === undefined) return;
      sentAt.delete(n);
      answered++;
      responseBytes = msg.length;
      if (answered % 16 === 0) latencies.push(performance.now() - t0);
      if (performance.now() < deadline) sendOne();
      else if (sentAt.size === 0) finish();
    });
    for (let i = 0; i < job.window; i++) sendOne();
    setTimeout(finish, job.seconds * 1000 + 3000); // stragglers (lost datagrams) do not hold the run
  });
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0;
}

async function main(): Promise<void> {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  const seconds = Number(process.argv[2] ?? 5);
  const window = Number(process.argv[3] ?? 200);

  const stack = new SipStack({
    udp: { host: '127.0.0.1', port: 0 },
    maxMessageBytes: 65535,
    checks: { supportedExtensions: new Set(), acceptedContentTypes: new Set() },
    logger: pino({ level: 'warn' }),
  });
  stack.onRequest((req) => req.respond(200, 'OK', { toTag: 'bench' }));
  await stack.start();
  const port = stack.addresses.udp?.port ?? 0;

  gc();
  const before = process.memoryUsage();
  const worker = new Worker(new URL(import.meta.url), { workerData: { port, seconds, window } satisfies ClientJob });
  const result = await new Promise<ClientResult>((resolve, reject) => {
    worker.once('message', (r: ClientResult) => resolve(r));
    worker.once('error', reject);
  });
  await worker.terminate();
  gc();
  const after = process.memoryUsage();
  const stats = stack.stats();
  await stack.stop();

  const held = stats.serverTransactions;
  const grown = after.heapUsed - before.heapUsed + (after.arrayBuffers - before.arrayBuffers);
  const sorted = [...result.latenciesMs].sort((a, b) => a - b);
  const perTxn = held > 0 ? grown / held : 0;
  console.log(`OPTIONS over UDP, loopback, window ${window}, ${seconds} s`);
  console.log(`  requests answered     ${result.answered} of ${result.sent}`);
  console.log(`  throughput            ${Math.round((result.answered / result.elapsedMs) * 1000)} requests/s`);
  console.log(`  latency               p50 ${percentile(sorted, 0.5).toFixed(2)} ms, p99 ${percentile(sorted, 0.99).toFixed(2)} ms`);
  console.log(`  retransmissions absorbed ${stats.retransmissionsAbsorbed}, dropped ${stats.dropped}`);
  console.log(`  completed transactions held ${held}`);
  console.log(`  heap + buffers grown  ${(grown / 1048576).toFixed(1)} MB = ${Math.round(perTxn)} bytes per completed transaction`);
  console.log(`    of which response bytes ${result.responseBytes}, so ${Math.round(perTxn - result.responseBytes)} bytes of bookkeeping each`);
}

if (isMainThread) {
  await main();
} else {
  const result = await runClient(workerData as ClientJob);
  parentPort?.postMessage(result);
}
