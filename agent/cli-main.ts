import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Agent } from './agent.ts';
import { ConfigError } from './config/load.ts';
import { createLogger } from './log/logger.ts';
import { releaseStartupMemory } from './runtime/startup-memory.ts';
import { stopOnSignals } from './runtime/stop-on-signals.ts';
import { SystemdNotifier } from './runtime/systemd-notify.ts';
import { loadAgentConfig } from '../provisioning/provisioned.ts';

// The other commands' modules (image, provisioning, the simulated PSTN, status) are
// imported by the command that needs them: `start` does not load them (~60 ms of the
// cold start, docs/decisions/0010).
async function usage(): Promise<string> {
  const [{ imageUsage }, { provisionUsage }, { simUsage }] = await Promise.all([
    import('../image/cli.ts'),
    import('../provisioning/cli.ts'),
    import('../drivers/sim/cli.ts'),
  ]);
  return `usage: branchline <command> [options]

commands:
  start  --config FILE           run the agent
  status --config FILE [--json]  show the site's registrations (from its store)
  check-config --config FILE     validate a config file and exit
${imageUsage}${provisionUsage}${simUsage}  --version                      print the version
`;
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function configArg(values: { config?: string | undefined }): Promise<string> {
  if (!values.config) {
    process.stderr.write(`missing --config FILE\n\n${await usage()}`);
    process.exit(2);
  }
  return values.config;
}

function load(file: string) {
  try {
    // The file, with what the controller granted at the claim laid over it.
    return loadAgentConfig(file);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(78); // EX_CONFIG
    }
    throw err;
  }
}

async function start(file: string): Promise<void> {
  const config = load(file);
  const logger = createLogger(config.log.level);
  const agent = new Agent(config, logger);
  // Under systemd (Type=notify): READY=1 once SIP listens, watchdog pings, STOPPING=1.
  const systemd = new SystemdNotifier({ logger: logger.child({ subsystem: 'systemd' }) });
  let stopping = false;
  let cancelMemoryRelease: (() => void) | undefined;
  stopOnSignals('agent', logger, async () => {
    stopping = true;
    cancelMemoryRelease?.();
    await systemd.stopping();
    await agent.stop();
  });
  try {
    await agent.start();
    await systemd.ready(`site ${config.site.id}: serving`);
    systemd.startWatchdog(() => !stopping);
    // Start-up's garbage and the young generation it grew, given back once the agent
    // is idle (agent/runtime/startup-memory.ts).
    if (!stopping) cancelMemoryRelease = releaseStartupMemory(logger.child({ subsystem: 'memory' }), { busy: () => (agent.calls?.activeCalls ?? 0) > 0 });
  } catch (err) {
    const code = (err as { code?: string }).code;
    const message = err instanceof Error ? err.message : String(err);
    logger.fatal({ err, code }, `agent failed to start: ${message}`);
    // Also on stderr, whatever log.level says: the log goes to stdout, may be silenced
    // or not kept by whoever started us, and an exit 1 without a word on stderr leaves
    // a supervisor (or a test helper) with nothing to say (e.g. a SIP port in use).
    process.stderr.write(`branchline: agent failed to start: ${message}${code ? ` (${code})` : ''}\n`);
    await agent.stop().catch(() => undefined);
    process.exit(1);
  }
}

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      json: { type: 'boolean' },
      version: { type: 'boolean', short: 'v' },
      help: { type: 'boolean', short: 'h' },
      // bundle / update / slots (image/cli.ts)
      slots: { type: 'string' },
      key: { type: 'string', multiple: true },
      installed: { type: 'string' },
      deadline: { type: 'string' },
      // provision (provisioning/cli.ts)
      timeout: { type: 'string' },
      // sim call (drivers/sim/cli.ts)
      from: { type: 'string' },
      to: { type: 'string' },
      audio: { type: 'string' },
      talk: { type: 'string' },
      card: { type: 'string' },
    },
  });
  const command = positionals[0];
  if (values.version || command === 'version') {
    process.stdout.write(`branchline ${version()}\n`);
    return;
  }
  switch (command) {
    case 'start':
      return start(await configArg(values));
    case 'status': {
      const { formatStatus, readStatus } = await import('./status.ts');
      const report = await readStatus(load(await configArg(values)));
      process.stdout.write(values.json ? `${JSON.stringify(report)}\n` : `${formatStatus(report)}\n`);
      return;
    }
    case 'check-config':
      load(await configArg(values));
      process.stdout.write('config ok\n');
      return;
    case 'provision':
      process.exitCode = await (await import('../provisioning/cli.ts')).runProvision(values);
      return;
    case 'sim': {
      const { runSimCommand } = await import('../drivers/sim/cli.ts');
      process.exitCode = await runSimCommand(positionals[1], load(await configArg(values)).linecards, values, {
        out: (text) => process.stdout.write(text),
        err: (text) => process.stderr.write(text),
      });
      return;
    }
    case 'bundle':
    case 'update':
    case 'slots':
      process.exitCode = await (await import('../image/cli.ts')).runImageCommand(command, positionals.slice(1), values);
      return;
    default:
      process.stdout.write(await usage());
      if (!values.help && command !== 'help') process.exitCode = 2;
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`branchline: ${(err as Error).message}\n`);
  process.exit(1);
});
