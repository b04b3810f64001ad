// The embedded stack a benchmark measures: the real `temporal server start-dev` with its SQLite file in
// a temp dir (headless), and in this process one microflows runtime (store, worker, HTTP server, outbox
// delivery) per payload-encryption setting under test (or per runtime variant a bench names), plus a
// bench-only Worker for the baseline's no-op workflow on its own task queue.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { startDevServer } from '../cli/dev-server';
import { startRuntime, type Runtime } from '../cli/runtime';
import { readConfig } from '../core/config';

export const BENCH_ROOT = __dirname;
export const PROJECT_ROOT = path.resolve(__dirname, '..');
export const BENCH_WRITE_KEY = 'bench-write-key';

/** MICROFLOWS_PAYLOAD_ENCRYPTION of a runtime under test. */
export type Encryption = 'off' | 'on';

/** A runtime to start beside the others: its own name (data dir, task queue), encryption and settings. */
export interface RuntimeVariant {
  name: string;
  encryption: Encryption;
  /** Environment variables over the bench defaults, e.g. MICROFLOWS_FLOWS_DIR (a policy.yaml) or SMTP_URL. */
  env?: Record<string, string>;
}

/** One microflows runtime on the shared dev server, with its own store, task queue and HTTP server. */
export interface MicroflowsUnderTest {
  name: string;
  encryption: Encryption;
  runtime: Runtime;
  /** The runtime's client, with its payload codec. */
  client: Client;
  /** microflows' HTTP server */
  url: string;
  /** Messages the runtime logged (dispatch failures show up here). */
  log: string[];
}

export interface BenchStack {
  microflows: MicroflowsUnderTest[];
  /** A client without a payload codec: the baseline's starts, and reading histories as Temporal stores them. */
  plainClient: Client;
  noopTaskQueue: string;
  /** The dev server's process id, for CPU sampling. */
  temporalPid: number | undefined;
  stop(): Promise<void>;
}

export interface BenchStackOptions {
  sqlitePragmas: string[];
  /** A runtime for each, in this order; all share the dev server, each has its own data dir. */
  encryptions?: Encryption[];
  /** Instead of one runtime per encryption setting: these runtimes, in this order. */
  runtimes?: RuntimeVariant[];
  workflowBundle: WorkflowBundleWithSourceMap;
  noopBundle: WorkflowBundleWithSourceMap;
}

export async function startBenchStack(options: BenchStackOptions): Promise<BenchStack> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'microflows-bench-'));
  const cleanups: Array<() => Promise<void> | void> = [() => fs.rmSync(dataDir, { recursive: true, force: true })];
  const stop = async () => {
    for (const cleanup of cleanups.reverse()) {
      try {
        await cleanup();
      } catch (err) {
        console.error(`[bench] cleanup: ${(err as Error).message}`);
      }
    }
  };
  try {
    const serverOutput: string[] = [];
    const dynamicConfig = (process.env.BENCH_DYNAMIC_CONFIG ?? '').split(',').filter(Boolean);
    const devServer = await startDevServer({ dataDir, headless: true, sqlitePragmas: options.sqlitePragmas, dynamicConfig, log: (line) => void serverOutput.push(line) });
    cleanups.push(() => devServer.stop());

    const connection = await Connection.connect({ address: devServer.address });
    cleanups.push(() => connection.close());
    const plainClient = new Client({ connection });
    const nativeConnection = await NativeConnection.connect({ address: devServer.address });
    cleanups.push(() => nativeConnection.close());

    const microflows: MicroflowsUnderTest[] = [];
    const variants = options.runtimes ?? (options.encryptions ?? []).map((encryption): RuntimeVariant => ({ name: `encryption-${encryption}`, encryption }));
    for (const { name, encryption, env } of variants) {
      const runtimeDir = path.join(dataDir, `microflows-${name}`);
      const config = readConfig(
        {
          PORT: '0',
          MICROFLOWS_DATA_DIR: runtimeDir,
          MICROFLOWS_FLOWS_DIR: path.join(BENCH_ROOT, 'fixtures/flows'),
          MICROFLOWS_TEMPLATES_DIR: path.join(BENCH_ROOT, 'fixtures/templates'),
          MICROFLOWS_WRITE_KEY: BENCH_WRITE_KEY,
          MICROFLOWS_PAYLOAD_ENCRYPTION: encryption === 'on' ? 'true' : 'false',
          // No MICROFLOWS_MASTER_KEY: on loopback the runtime generates one into its data dir, as `microflows start` does.
          TEMPORAL_ADDRESS: devServer.address,
          TEMPORAL_TASK_QUEUE: `bench-${process.pid}-${name}`,
          // No SMTP_URL: sends go to the outbox table, as in the embedded default.
          ...env,
        },
        PROJECT_ROOT,
      );
      const log: string[] = [];
      const runtime = await startRuntime({
        config,
        temporal: { client: plainClient, nativeConnection },
        workflowBundle: options.workflowBundle,
        schedule: false,
        log: (message) => void log.push(message),
      });
      cleanups.push(() => runtime.stop());
      // The runtime's copy of the client, with the payload codec: what it reads is decrypted.
      microflows.push({ name, encryption, runtime, client: runtime.client, url: runtime.url!, log });
    }

    const noopTaskQueue = `bench-noop-${process.pid}`;
    const noopWorker = await Worker.create({ connection: nativeConnection, taskQueue: noopTaskQueue, workflowBundle: options.noopBundle });
    const noopRunning = noopWorker.run();
    cleanups.push(async () => {
      if (noopWorker.getState() === 'RUNNING') noopWorker.shutdown();
      await noopRunning;
    });

    return { microflows, plainClient, noopTaskQueue, temporalPid: devServer.pid, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
