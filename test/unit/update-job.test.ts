// The controller's firmware.update job as the operator and the logs see it: a bundle
// URL carrying a credential (user:password, a pre-signed query) never shows it in the
// answer or the agent's log, even when the download fails.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { after, test } from 'node:test';
import { createLogger } from '../../agent/log/logger.ts';
import { UpdateJobs, urlForLogs } from '../../image/update-job.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'branchline-update-job-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('a failed download names the URL without its user, password or query', async () => {
  const lines: string[] = [];
  const out = new PassThrough();
  out.on('data', (b: Buffer) => lines.push(b.toString()));
  let command: ((args: unknown) => Promise<unknown>) | undefined;
  const jobs = new UpdateJobs({
    config: { state_dir: dir, firmware: { slots: path.join(dir, 'slots'), restart_after_update: false, call_deadline: 1, download_timeout: 5, report_interval: 3600 } },
    registerCommand: (_name, handler) => (command = handler),
    enqueue: async () => undefined,
    calls: { description: 'none', activeCalls: async () => 0 },
    requestRestart: () => assert.fail('no restart after a failed download'),
    logger: createLogger('info', out),
  });
  jobs.start();
  try {
    // Port 9 on loopback (discard): nothing listens, the fetch fails at once.
    const url = 'http://ops:hunter2@127.0.0.1:9/bundle.blb?X-Amz-Signature=deadbeefsecret';
    await assert.rejects(command?.({ url }) ?? Promise.reject(new Error('no command registered')), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'EDOWNLOAD');
      assert.match(err.message, /http:\/\/127\.0\.0\.1:9\/bundle\.blb\?…/);
      assert.doesNotMatch(err.message, /hunter2|deadbeefsecret|ops:/);
      return true;
    });
  } finally {
    await jobs.stop();
  }
  assert.doesNotMatch(lines.join(''), /hunter2|deadbeefsecret/);
  assert.equal(urlForLogs('not a url'), '(unparseable URL)');
});
