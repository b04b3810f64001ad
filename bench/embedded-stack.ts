// The embedded stack a benchmark measures: the real `temporal server start-dev` with its SQLite file in
// a temp dir (headless), and in this process the microflows runtime (store, worker, HTTP server, outbox
// delivery) plus a bench-only Worker for the baseline's no-op workflow on its own task queue.
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

export interface BenchStack {
  runtime: Runtime;
  client: Client;
  /** microflows' HTTP server */
  url: string;
  noopTaskQueue: string;
  /** The dev server's process id, for CPU sampling. */
  temporalPid: number | undefined;
  /** Messages the runtime logged (dispatch failures show up here). */
  log: string[];
  stop(): Promise<void>;
}

export interface BenchStackOptions {
  sqlitePragmas: string[];
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
  const log: string[] = [];
  try {
    const serverOutput: string[] = [];
    const dynamicConfig = (process.env.BENCH_DYNAMIC_CONFIG ?? '').split(',').filter(Boolean);
    const devServer = await startDevServer({ dataDir, headless: true, sqlitePragmas: options.sqlitePragmas, dynamicConfig, log: (line) => void serverOutput.push(line) });
    cleanups.push(() => devServer.stop());

    const connection = await Connection.connect({ address: devServer.address });
    cleanups.push(() => connection.close());
    const client = new Client({ connection });
    const nativeConnection = await NativeConnection.connect({ address: devServer.address });
    cleanups.push(() => nativeConnection.close());

    const config = readConfig(
      {
        PORT: '0',
        MICROFLOWS_DATA_DIR: dataDir,
        MICROFLOWS_FLOWS_DIR: path.join(BENCH_ROOT, 'fixtures/flows'),
        MICROFLOWS_TEMPLATES_DIR: path.join(BENCH_ROOT, 'fixtures/templates'),
        MICROFLOWS_WRITE_KEY: BENCH_WRITE_KEY,
        TEMPORAL_ADDRESS: devServer.address,
        TEMPORAL_TASK_QUEUE: `bench-${process.pid}`,
        // No SMTP_URL: sends go to the outbox table, as in the embedded default.
      },
      PROJECT_ROOT,
    );
    const runtime = await startRuntime({
      config,
      temporal: { client, nativeConnection },
      workflowBundle: options.workflowBundle,
      schedule: false,
      log: (message) => void log.push(message),
    });
    cleanups.push(() => runtime.stop());

    const noopTaskQueue = `bench-noop-${process.pid}`;
    const noopWorker = await Worker.create({ connection: nativeConnection, taskQueue: noopTaskQueue, workflowBundle: options.noopBundle });
    const noopRunning = noopWorker.run();
    cleanups.push(async () => {
      if (noopWorker.getState() === 'RUNNING') noopWorker.shutdown();
      await noopRunning;
    });

    return { runtime, client, url: runtime.url!, noopTaskQueue, temporalPid: devServer.pid, log, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
