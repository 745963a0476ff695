// The single executable: the agent bundled by esbuild into one CommonJS file, turned
// into a Node single-executable-application blob, and injected with postject into a
// copy of the same Node 24 binary that runs the build (the blob must come from the
// Node it is injected into). See docs/decisions/0004-single-executable.md.
import { execFile } from 'node:child_process';
import { chmodSync, copyFileSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { promisify } from 'node:util';
import * as esbuild from 'esbuild';
import { V8_MEMORY_FLAGS } from '../../agent/runtime/memory-flags.ts';

const run = promisify(execFile);
const require = createRequire(import.meta.url);

/** From Node's single-executable-applications documentation: the fuse flipped by injection. */
export const SEA_SENTINEL_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
export const SEA_RESOURCE = 'NODE_SEA_BLOB';

export class BuildError extends Error {
  readonly code: 'EBUILD_BUNDLE' | 'EBUILD_SEA' | 'EBUILD_INJECT';
  constructor(code: BuildError['code'], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** A native addon the bundle loads, and where the build finds it. */
export interface NativeAddon {
  /** The file name beside the executable (for `bindings`: the name the package asks for). */
  name: string;
  /** The built addon in node_modules. */
  source: string;
  /** How the package finds it: `bindings` (sqlite3) or `node-gyp-build` (serialport). */
  loader: 'bindings' | 'node-gyp-build';
}

export function nativeAddons(repoRoot: string, arch: string = process.arch): NativeAddon[] {
  return [
    { name: 'node_sqlite3.node', source: path.join(repoRoot, 'node_modules/sqlite3/build/Release/node_sqlite3.node'), loader: 'bindings' },
    // serialport ships prebuilt addons per platform; the glibc one for Debian.
    {
      name: 'serialport_bindings.node',
      source: path.join(repoRoot, `node_modules/@serialport/bindings-cpp/prebuilds/linux-${arch}/@serialport+bindings-cpp.glibc.node`),
      loader: 'node-gyp-build',
    },
  ];
}

/**
 * `bindings` and `node-gyp-build` find an addon by walking up from the calling file,
 * which a bundle no longer has. Replace both: load the addon from the executable's own
 * folder (`node-gyp-build` has one user, serialport, so it loads that one addon).
 */
function nativeAddonPlugin(addons: readonly NativeAddon[]): esbuild.Plugin {
  const known = JSON.stringify(addons.filter((a) => a.loader === 'bindings').map((a) => a.name));
  const gyp = addons.filter((a) => a.loader === 'node-gyp-build').map((a) => a.name);
  if (gyp.length !== 1) throw new BuildError('EBUILD_BUNDLE', `node-gyp-build can stand for exactly one shipped addon, not ${gyp.length}`);
  return {
    name: 'branchline-native-addons',
    setup(build) {
      build.onResolve({ filter: /^bindings$/ }, () => ({ path: 'bindings', namespace: 'branchline-native' }));
      build.onResolve({ filter: /^node-gyp-build$/ }, () => ({ path: 'node-gyp-build', namespace: 'branchline-native' }));
      build.onLoad({ filter: /^node-gyp-build$/, namespace: 'branchline-native' }, () => ({
        loader: 'js',
        contents: `
          const path = require('node:path');
          module.exports = function nodeGypBuild() {
            const mod = { exports: {} };
            process.dlopen(mod, path.join(path.dirname(process.execPath), ${JSON.stringify(gyp[0])}));
            return mod.exports;
          };`,
      }));
      build.onLoad({ filter: /^bindings$/, namespace: 'branchline-native' }, () => ({
        loader: 'js',
        contents: `
          const path = require('node:path');
          const shipped = ${known};
          module.exports = function bindings(options) {
            const name = path.basename(typeof options === 'string' ? options : options.bindings);
            const file = name.endsWith('.node') ? name : name + '.node';
            if (!shipped.includes(file)) throw new Error('native addon ' + file + ' is not shipped in this image');
            const mod = { exports: {} };
            process.dlopen(mod, path.join(path.dirname(process.execPath), file));
            return mod.exports;
          };`,
      }));
    },
  };
}

/**
 * Sources find files of the repository from their own location, e.g.
 * `new URL('../../package.json', import.meta.url)`. A bundle has no such location, so
 * each module's import.meta.url becomes the same relative path under the image root
 * (the binary's SLOT/bin/.. folder): the image stands where the repository stood, and
 * every such expression reads the image's copy of the file.
 */
const moduleUrlBanner =
  "const __branchlineModuleUrl = (rel) => require('node:url').pathToFileURL(require('node:path').join(require('node:path').dirname(process.execPath), '..', rel)).href;";

function moduleUrlPlugin(repoRoot: string): esbuild.Plugin {
  return {
    name: 'branchline-module-url',
    setup(build) {
      build.onLoad({ filter: /\.ts$/ }, async (args) => {
        if (args.path.includes(`${path.sep}node_modules${path.sep}`)) return undefined;
        const source = await readFile(args.path, 'utf8');
        if (!source.includes('import.meta.url')) return undefined;
        const rel = path.relative(repoRoot, args.path).split(path.sep).join('/');
        return { loader: 'ts', contents: source.replaceAll('import.meta.url', `__branchlineModuleUrl(${JSON.stringify(rel)})`) };
      });
    },
  };
}

/** Bundles agent/cli-main.ts (and everything it imports) into one CommonJS file. */
export async function bundleAgent(repoRoot: string, outFile: string): Promise<{ bytes: number }> {
  let result: esbuild.BuildResult<{ metafile: true }>;
  try {
    result = await esbuild.build({
      entryPoints: [path.join(repoRoot, 'agent/cli-main.ts')], // cli.ts only enables the compile cache, which a SEA does not use
      // Paths in the output are relative to this: the same bytes from any checkout.
      absWorkingDir: repoRoot,
      outfile: outFile,
      bundle: true,
      platform: 'node',
      target: 'node24',
      format: 'cjs',
      metafile: true,
      legalComments: 'none',
      // Comments out: some carry non-ASCII characters (§, —), which made V8 hold the
      // whole 3.3 MB script as a two-byte string (6.3 MB of heap in every agent); the
      // smaller one-byte script costs ~2 MB. Names stay, so stack traces still read.
      minifyWhitespace: true,
      charset: 'ascii',
      logLevel: 'silent',
      banner: { js: moduleUrlBanner },
      plugins: [moduleUrlPlugin(repoRoot), nativeAddonPlugin(nativeAddons(repoRoot))],
    });
  } catch (err) {
    const errors = (err as { errors?: esbuild.Message[] }).errors ?? [];
    const first = errors[0];
    const where = first?.location ? `${first.location.file}:${first.location.line}: ` : '';
    throw new BuildError('EBUILD_BUNDLE', `esbuild could not bundle the agent: ${where}${first?.text ?? (err as Error).message}`, { cause: err });
  }
  if (result.warnings.length > 0) {
    const w = result.warnings[0]!;
    throw new BuildError('EBUILD_BUNDLE', `esbuild warned (a warning here is a runtime failure in the binary): ${w.location?.file ?? ''}:${w.location?.line ?? ''} ${w.text}`);
  }
  const bytes = Object.values(result.metafile.outputs).reduce((sum, o) => sum + o.bytes, 0);
  return { bytes };
}

export interface ExecutableOptions {
  repoRoot: string;
  /** A scratch folder for the bundle and blob. */
  workDir: string;
  /** Where the executable goes. */
  out: string;
  /** The Node binary to inject into; the build's own Node by default (same version as the blob). */
  nodeBinary?: string;
  /** Drop the debug symbols of the Node binary (about 18 MB) before injecting. */
  strip?: boolean;
}

export async function buildExecutable(opts: ExecutableOptions): Promise<{ bundleBytes: number }> {
  const main = path.join(opts.workDir, 'branchline.cjs');
  const blob = path.join(opts.workDir, 'sea-prep.blob');
  const seaConfig = path.join(opts.workDir, 'sea-config.json');
  const { bytes } = await bundleAgent(opts.repoRoot, main);
  writeFileSync(
    seaConfig,
    JSON.stringify({
      main,
      output: blob,
      disableExperimentalSEAWarning: true,
      // Off: a code cache is tied to the exact V8 build and CPU flags, and makes the
      // blob differ between build machines; the build must be reproducible.
      useCodeCache: false,
      useSnapshot: false,
      // The service unit also drops NODE_OPTIONS; here the binary itself ignores it,
      // so no environment can inject code or flags into the agent.
      // The same V8 heap flags agent/cli.ts relaunches with when run from sources
      // (agent/runtime/memory-flags.ts has the figures).
      execArgv: [...V8_MEMORY_FLAGS],
      execArgvExtension: 'none',
    }),
  );
  try {
    await run(process.execPath, ['--experimental-sea-config', seaConfig], { cwd: opts.workDir });
  } catch (err) {
    throw new BuildError('EBUILD_SEA', `node could not write the SEA blob: ${(err as { stderr?: string }).stderr ?? (err as Error).message}`, { cause: err });
  }
  const nodeBinary = opts.nodeBinary ?? process.execPath;
  if (opts.strip ?? true) {
    try {
      await run('strip', ['--strip-all', '-o', opts.out, nodeBinary]);
    } catch {
      copyFileSync(nodeBinary, opts.out); // no binutils: a larger but equally working binary
    }
  } else {
    copyFileSync(nodeBinary, opts.out);
  }
  chmodSync(opts.out, 0o755);
  try {
    // The CLI rather than the API: postject's ELF library prints harmless warnings on
    // Node's many note sections; captured here, shown only if injection fails.
    const cli = path.join(path.dirname(require.resolve('postject')), 'cli.js');
    await run(process.execPath, [cli, opts.out, SEA_RESOURCE, blob, '--sentinel-fuse', SEA_SENTINEL_FUSE], { maxBuffer: 16 * 1024 * 1024 });
  } catch (err) {
    throw new BuildError('EBUILD_INJECT', `postject could not inject the blob: ${(err as { stderr?: string }).stderr ?? (err as Error).message}`, { cause: err });
  }
  return { bundleBytes: bytes };
}
