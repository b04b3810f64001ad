// Starts the real stack for an integration test: Temporal's time-skipping test server (or the dev
// server), a SQLite store in a temp dir, an SMTP sink on a real socket, the worker and HTTP server.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, Runtime as TemporalRuntime, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { readConfig, type Config } from '../../core/config';
import { startRuntime, type Runtime } from '../../cli/runtime';
import { temporalTestServerPath } from '../../cli/temporal-binaries';
import { startSmtpSink, type SmtpSink } from './smtp-sink';
import { throwawayDatabase } from './store-backends';

export const PROJECT_ROOT = path.resolve(__dirname, '../..');
export const WRITE_KEY = 'test-write-key';

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;

// Workers log workflow task failures at WARN; that is what a test needs to see, not INFO chatter.
try {
  // The time-skipping server lacks a capability the Rust core warns about once per worker: noise here.
  TemporalRuntime.install({ logger: new DefaultLogger('WARN'), telemetryOptions: { logging: { filter: { core: 'ERROR', other: 'ERROR' } } } });
} catch {
  /* already installed in this process */
}

/** Bundles workflows/ once per test file (the module registry is per file under jest). */
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundle ??= bundleWorkflowCode({ workflowsPath: require.resolve('../../workflows'), logger: { log: () => undefined, trace: () => undefined, debug: () => undefined, info: () => undefined, warn: () => undefined, error: (m: string) => console.error(m) } as never });
  return bundle;
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `microflows-${prefix}-`));
}

export function testConfig(overrides: Record<string, string>): Config {
  return readConfig(
    {
      PORT: '0',
      MICROFLOWS_WRITE_KEY: WRITE_KEY,
      MICROFLOWS_FLOWS_DIR: path.join(PROJECT_ROOT, 'flows'),
      MICROFLOWS_TEMPLATES_DIR: path.join(PROJECT_ROOT, 'templates'),
      TEMPORAL_TASK_QUEUE: `test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`,
      ...overrides,
    },
    PROJECT_ROOT,
  );
}

export interface TimeSkippingStack {
  env: TestWorkflowEnvironment;
  runtime: Runtime;
  smtp: SmtpSink;
  url: string;
  dataDir: string;
  stop(): Promise<void>;
}

export type StackDatabase = 'sqlite' | 'postgres';

/** The databases an integration suite runs on: SQLite always, PostgreSQL when TEST_DATABASE_URL is set. */
export function stackDatabases(suite: string): StackDatabase[] {
  if (process.env.TEST_DATABASE_URL) return ['sqlite', 'postgres'];
  process.stdout.write(`${suite}: PostgreSQL run skipped because TEST_DATABASE_URL is unset\n`);
  return ['sqlite'];
}

export async function startTimeSkippingStack(overrides: Record<string, string> = {}, database: StackDatabase = 'sqlite'): Promise<TimeSkippingStack> {
  const postgres = database === 'postgres' ? throwawayDatabase(process.env.TEST_DATABASE_URL ?? '') : null;
  if (postgres) {
    await postgres.create();
    overrides = { DATABASE_URL: postgres.url, ...overrides };
  }
  const env = await TestWorkflowEnvironment.createTimeSkipping({ server: { executable: { type: 'existing-path', path: temporalTestServerPath() } } });
  const smtp = await startSmtpSink();
  const dataDir = tempDir('ts');
  // The time-skipping server has no custom search attributes: runs are indexed on the dev server tests.
  const config = testConfig({ MICROFLOWS_DATA_DIR: dataDir, SMTP_URL: smtp.url, MICROFLOWS_SEARCH_ATTRIBUTES: 'false', ...overrides });
  const runtime = await startRuntime({
    config,
    temporal: { client: env.client, nativeConnection: env.nativeConnection },
    workflowBundle: await workflowBundle(),
    schedule: false,
    log: () => undefined,
  });
  return {
    env,
    runtime,
    smtp,
    url: runtime.url!,
    dataDir,
    async stop() {
      await runtime.stop();
      await smtp.close();
      await env.teardown();
      await postgres?.drop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
