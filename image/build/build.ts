// `npm run build:image`: builds the signed update bundle into image/out/.
//
//   node image/build/build.ts [--version V] [--min-version V] [--compression xz|zstd|gzip|lz4]
//                             [--signing-key FILE] [--out DIR]
//
// Steps: esbuild bundle → SEA blob → postject into a stripped Node 24 → smoke test of
// the executable → image tree → squashfs → manifest + ed25519 signature → bundle.
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { ARCHITECTURES, type Architecture } from '../bundle/manifest.ts';
import { isVersion } from '../bundle/version.ts';
import { IMAGE_BINARY, IMAGE_DEFAULT_CONFIG } from '../layout.ts';
import type { Compression } from '../squashfs.ts';
import { buildExecutable, nativeAddons } from './executable.ts';
import { packBundle } from './pack.ts';
import { loadOrCreateSigningKey } from './signing-key.ts';
import { stageImage } from './stage.ts';

const run = promisify(execFile);

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const DEFAULT_OUT = path.join(REPO_ROOT, 'image/out');

export interface BuildOptions {
  version: string;
  minVersion: string;
  compression: Compression;
  outDir: string;
  signingKeyFile: string;
  /** Create the signing key if missing (developer builds); a named release key must exist. */
  createKey: boolean;
  mtime: number;
}

export interface BuildReport {
  bundle: string;
  version: string;
  architecture: Architecture;
  bundle_bytes: number;
  image_bytes: number;
  unpacked_bytes: number;
  js_bytes: number;
  public_key: string;
  ms: { executable: number; smoke: number; stage: number; pack: number; total: number };
}

/** Runs the staged binary as a user would: it must know its version and accept its default config. */
async function smokeTest(stageDir: string, version: string): Promise<void> {
  const binary = path.join(stageDir, IMAGE_BINARY);
  const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin' };
  const { stdout } = await run(binary, ['--version'], { env });
  if (stdout.trim() !== `branchline ${version}`) throw new Error(`the built executable says "${stdout.trim()}", expected "branchline ${version}"`);
  await run(binary, ['check-config', '--config', path.join(stageDir, IMAGE_DEFAULT_CONFIG)], { env });
}

export async function buildImage(opts: BuildOptions): Promise<BuildReport> {
  const t0 = performance.now();
  const architecture = process.arch as Architecture;
  if (!(ARCHITECTURES as readonly string[]).includes(architecture)) throw new Error(`cannot build on ${process.arch}`);
  const work = path.join(opts.outDir, 'work');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const key = loadOrCreateSigningKey(opts.signingKeyFile, { create: opts.createKey });

  const exe = path.join(work, 'branchline');
  const { bundleBytes: jsBytes } = await buildExecutable({ repoRoot: REPO_ROOT, workDir: work, out: exe });
  const t1 = performance.now();

  const stageDir = path.join(work, 'image');
  const { unpackedSize } = stageImage({
    dir: stageDir,
    executable: exe,
    addons: nativeAddons(REPO_ROOT),
    version: opts.version,
    trustedKeys: [key.publicFile],
    filesDir: path.join(REPO_ROOT, 'image/files'),
    phoneTemplatesDir: path.join(REPO_ROOT, 'provisioning/templates'),
  });
  const t2 = performance.now();
  await smokeTest(stageDir, opts.version);
  const t3 = performance.now();

  const bundle = path.join(opts.outDir, `branchline-${opts.version}-${architecture}.bundle`);
  const packed = await packBundle({
    stageDir,
    imageFile: path.join(work, 'image.squashfs'),
    bundleFile: bundle,
    version: opts.version,
    minVersion: opts.minVersion,
    architecture,
    node: process.versions.node,
    unpackedSize,
    compression: opts.compression,
    signingKey: key.privateKey,
    mtime: opts.mtime,
  });
  const t4 = performance.now();
  rmSync(work, { recursive: true, force: true });
  return {
    bundle,
    version: opts.version,
    architecture,
    bundle_bytes: packed.bundleBytes,
    image_bytes: packed.imageBytes,
    unpacked_bytes: unpackedSize,
    js_bytes: jsBytes,
    public_key: key.publicFile,
    ms: { executable: Math.round(t1 - t0), stage: Math.round(t2 - t1), smoke: Math.round(t3 - t2), pack: Math.round(t4 - t3), total: Math.round(t4 - t0) },
  };
}

function packageVersion(): string {
  return (JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      version: { type: 'string' },
      'min-version': { type: 'string' },
      compression: { type: 'string' },
      'signing-key': { type: 'string' },
      out: { type: 'string' },
    },
  });
  const version = values.version ?? packageVersion();
  const minVersion = values['min-version'] ?? '0.0.0';
  for (const v of [version, minVersion]) if (!isVersion(v)) throw new Error(`"${v}" is not MAJOR.MINOR.PATCH[-PRERELEASE]`);
  const compression = (values.compression ?? 'xz') as Compression;
  if (!['xz', 'zstd', 'gzip', 'lz4'].includes(compression)) throw new Error(`--compression must be xz, zstd, gzip or lz4`);
  const outDir = path.resolve(values.out ?? DEFAULT_OUT);
  const named = values['signing-key'] ?? process.env['BRANCHLINE_SIGNING_KEY'];
  const epoch = Number(process.env['SOURCE_DATE_EPOCH'] ?? '0');
  const report = await buildImage({
    version,
    minVersion,
    compression,
    outDir,
    signingKeyFile: named ? path.resolve(named) : path.join(outDir, 'keys', 'signing.key'),
    createKey: !named,
    mtime: Number.isInteger(epoch) && epoch >= 0 ? epoch : 0,
  });
  const mb = (n: number): string => `${(n / 1e6).toFixed(1)} MB`;
  process.stderr.write(
    `built ${path.relative(process.cwd(), report.bundle)}: ${mb(report.bundle_bytes)} (${compression}; ${mb(report.unpacked_bytes)} unpacked) in ${(report.ms.total / 1000).toFixed(1)} s\n` +
      `trusted public key: ${path.relative(process.cwd(), report.public_key)}\n`,
  );
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    process.stderr.write(`build failed: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
