// Starts the real stack for an integration test: Temporal's time-skipping test server (or the dev
// server), a SQLite store in a temp dir, an SMTP sink on a real socket, the worker and HTTP server.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, Runtime as TemporalRuntime, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { readConfig, type Config } from '../../core/config';
import { startRuntime, type Runtime } from '../../cli/runtime';
import { FAILURE_CONVERTER_PATH } from '../../client/payload-codec';
import { temporalTestServerPath } from '../../cli/temporal-binaries';
import { startSmtpSink, type SmtpSink } from './smtp-sink';
import { postgresSkipReason, throwawayDatabase } from './store-backends';
import { TEST_ADMIN_KEY } from './http';

export const PROJECT_ROOT = path.resolve(__dirname, '../..');
export const WRITE_KEY = 'test-write-key';
/** The master key of the payload codec in tests (32 bytes, hex): fixed, so processes of one test share it. */
export const TEST_MASTER_KEY = '6d6963726f666c6f77732d746573742d6d61737465722d6b65792d3332627974';

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
  // The runtime's workers use this failure converter (client/payload-codec): the bundle is made with it too.
  bundle ??= bundleWorkflowCode({ workflowsPath: require.resolve('../../workflows'), failureConverterPath: FAILURE_CONVERTER_PATH, logger: { log: () => undefined, trace: () => undefined, debug: () => undefined, info: () => undefined, warn: () => undefined, error: (m: string) => console.error(m) } as never });
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
      MICROFLOWS_ADMIN_KEY: TEST_ADMIN_KEY,
      // Every integration test runs with Temporal payloads encrypted, as a deployment does.
      MICROFLOWS_MASTER_KEY: TEST_MASTER_KEY,
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

/**
 * The time-skipping environment, with a client connection that keeps the test server's ping policy.
 *
 * The test server (grpc-java, default policy) accepts no keepalive ping on an idle connection and one
 * per 5 minutes with a call open. The SDK's client pings every 30 s, idle or not. So after about 90 s
 * without traffic the server answers GOAWAY "too_many_pings" and closes the connection (seen here
 * with 100 s idle). Any RPC in flight dies with it, and the retry interceptor sends it again. The
 * lock and unlock calls behind `env.sleep` and `result()` are counted, not idempotent: one replayed
 * lock would leave time skipping locked, and the next `env.sleep('7d')` would wait seven real days.
 * A CI run hung in flows.test.ts with this GOAWAY in its log; a later hang without it showed this
 * was not the only cause (see `openWorkflowsReport`).
 * `createTimeSkipping` takes no connection options, so this calls the factory behind it (private
 * in the typings, pinned SDK 1.24) with the keepalive the server accepts.
 */
async function createTimeSkippingEnvironment(workerReport: () => string): Promise<TestWorkflowEnvironment> {
  const factory = TestWorkflowEnvironment as unknown as {
    create(options: {
      server: { type: 'time-skipping'; executable: { type: 'existing-path'; path: string } };
      supportsTimeSkipping: true;
      connectionOptions: { channelArgs: Record<string, number> };
    }): Promise<TestWorkflowEnvironment>;
  };
  const env = await factory.create({
    server: { type: 'time-skipping', executable: { type: 'existing-path', path: temporalTestServerPath() } },
    supportsTimeSkipping: true,
    connectionOptions: { channelArgs: { 'grpc.keepalive_permit_without_calls': 0, 'grpc.keepalive_time_ms': 6 * 60_000 } },
  });
  // A skip or a result that never comes should fail naming itself and what held time, not as a bare jest timeout.
  const sleep = env.sleep;
  const diagnose = async () => `${(await openWorkflows(env)).report}\n${workerReport()}`;
  env.sleep = (duration) =>
    within(`env.sleep(${String(duration)}) on the time-skipping server`, SKIP_DEADLINE_MS, sleepReleasingLeakedLock(env, sleep(duration)), diagnose);
  resultsWithDeadline(env.client, diagnose);
  return env;
}

/** A client's `result()` fails naming the workflow and what held time, instead of hanging past SKIP_DEADLINE_MS. */
function resultsWithDeadline(client: Client, diagnose: () => Promise<string>): void {
  const workflow = client.workflow;
  const result = workflow.result.bind(workflow);
  workflow.result = (workflowId, runId, options) => within(`the result of ${workflowId} on the time-skipping server`, SKIP_DEADLINE_MS, result(workflowId, runId, options), diagnose);
}

/**
 * The test server skips time only while no workflow task or activity is outstanding: when a skip stalls, this
 * lists the open workflows with their pending workflow task and activities, which is what holds it.
 */
async function openWorkflows(env: TestWorkflowEnvironment): Promise<{ outstanding: number; report: string }> {
  const service = env.client.workflowService;
  const namespace = env.namespace ?? 'default';
  const { executions } = await service.listOpenWorkflowExecutions({ namespace, maximumPageSize: 100 });
  const lines: string[] = [];
  let outstanding = 0;
  for (const execution of executions ?? []) {
    const described = await service.describeWorkflowExecution({ namespace, execution: execution.execution });
    const task = described.pendingWorkflowTask;
    const activities = (described.pendingActivities ?? []).map(
      (a) => `${a.activityType?.name} state=${String(a.state)} attempt=${a.attempt} lastFailure=${a.lastFailure?.message ?? '-'}`,
    );
    outstanding += (task ? 1 : 0) + activities.length;
    lines.push(
      `${execution.execution?.workflowId} (${execution.type?.name}): workflow task ${task ? `state=${String(task.state)} attempt=${task.attempt}` : 'none'}; ` +
        `activities: ${activities.length > 0 ? activities.join('; ') : 'none'}`,
    );
  }
  return { outstanding, report: lines.length > 0 ? lines.join('\n') : 'no open workflows' };
}

/** How long a skip may run before it is checked for a leaked lock. */
const STALL_CHECK_MS = 15_000;

/**
 * The test server can leak a time-skipping lock: one taken for an activity or workflow task of a workflow that
 * then closed is never released (temporalio/sdk-java#1138; #3092 is another path to an extra lock). Time then
 * never advances again, and every later skip in the file hangs — seen here as a skip stalled with no task
 * outstanding in any open workflow. A skip holds no lock of ours while it waits (it released the environment's
 * one), so a stall with nothing outstanding means the count is held by a leak, and releasing one lock is safe.
 * It is released once per stalled check and said on stderr, with what the server held.
 */
async function sleepReleasingLeakedLock(env: TestWorkflowEnvironment, skip: Promise<void>): Promise<void> {
  let done = false;
  const finished = skip.finally(() => {
    done = true;
  });
  for (let check = 0; check < 3 && !done; check++) {
    await Promise.race([finished.catch(() => undefined), new Promise((resolve) => setTimeout(resolve, STALL_CHECK_MS).unref())]);
    if (done) break;
    const { outstanding, report } = await openWorkflows(env);
    if (outstanding > 0) continue;
    process.stderr.write(`[test] a time skip stalled for ${STALL_CHECK_MS / 1000} s with no task outstanding: releasing a leaked time-skipping lock\n${report}\n`);
    await env.connection.testService?.unlockTimeSkipping({});
  }
  return finished;
}

/** Real time any one skip or result may take; a healthy run needs a few seconds. */
const SKIP_DEADLINE_MS = 60_000;

/** `promise`, or an error naming `what` (and what `diagnose` finds) once `ms` of real time have passed. */
export async function within<T>(what: string, ms: number, promise: Promise<T>, diagnose?: () => Promise<string> | string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const message = `${what} did not finish within ${ms / 1000} s`;
      if (!diagnose) return reject(new Error(message));
      Promise.resolve()
        .then(diagnose)
        .then(
          (report) => reject(new Error(`${message}. At that moment:\n${report}`)),
          (err: unknown) => reject(new Error(`${message} (and the diagnosis failed: ${String(err)})`)),
        );
    }, ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * One plain time-skipping server for a test file, started by the first suite that asks and torn down after the
 * file (the registered afterAll): for suites that wire their own parts to it rather than a whole stack.
 */
export function fileTimeSkippingServer(): () => Promise<TestWorkflowEnvironment> {
  let environment: Promise<TestWorkflowEnvironment> | undefined;
  afterAll(async () => {
    await (await environment)?.teardown();
  });
  return () => (environment ??= TestWorkflowEnvironment.createTimeSkipping({ server: { executable: { type: 'existing-path', path: temporalTestServerPath() } } }));
}

export type StackDatabase = 'sqlite' | 'postgres';

/**
 * The databases an integration suite runs on: SQLite and PostgreSQL. Suites describe each with `describeOn`, so
 * without TEST_DATABASE_URL the PostgreSQL run registers as skipped, with the reason, and says so in one line.
 */
export function stackDatabases(suite: string): StackDatabase[] {
  const reason = postgresSkipReason();
  if (reason) process.stdout.write(`${suite}: PostgreSQL run skipped because ${reason}\n`);
  return ['sqlite', 'postgres'];
}

export async function startTimeSkippingStack(overrides: Record<string, string> = {}, database: StackDatabase = 'sqlite'): Promise<TimeSkippingStack> {
  const postgres = database === 'postgres' ? throwawayDatabase(process.env.TEST_DATABASE_URL ?? '') : null;
  if (postgres) {
    await postgres.create();
    overrides = { DATABASE_URL: postgres.url, ...overrides };
  }
  const runtimeLog: string[] = [];
  const started: { runtime?: Runtime } = {};
  const workerReport = () => `worker ${started.runtime?.worker?.getState() ?? 'not started'}; last runtime log lines:\n${runtimeLog.join('\n') || '(none)'}`;
  const env = await createTimeSkippingEnvironment(workerReport);
  const smtp = await startSmtpSink();
  const dataDir = tempDir('ts');
  // The time-skipping server has no custom search attributes: runs are indexed on the dev server tests.
  const config = testConfig({ MICROFLOWS_DATA_DIR: dataDir, SMTP_URL: smtp.url, MICROFLOWS_SEARCH_ATTRIBUTES: 'false', ...overrides });
  const runtime = await startRuntime({
    config,
    temporal: { client: env.client, nativeConnection: env.nativeConnection },
    workflowBundle: await workflowBundle(),
    schedule: false,
    // Kept, not printed: a stalled skip reports them, with the worker's state.
    log: (line) => {
      runtimeLog.push(line);
      if (runtimeLog.length > 40) runtimeLog.shift();
    },
  });
  started.runtime = runtime;
  // The runtime's client is the environment's (time-skipping) client with the payload codec: tests reading results,
  // queries and histories through `env.client` then see plaintext, as an operator's client with the key does.
  resultsWithDeadline(runtime.client, async () => `${(await openWorkflows(env)).report}\n${workerReport()}`);
  Object.defineProperty(env, 'client', { value: runtime.client, configurable: true });
  const idle = runtime.dispatcher.idle.bind(runtime.dispatcher);
  // Segment evaluations after a commit record Segment Entered / Exited events and dispatch them: wait for those too.
  runtime.dispatcher.idle = () => within('segment updates and the dispatcher handing recorded events to Temporal', SKIP_DEADLINE_MS, runtime.segments.idle().then(idle));
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
