// The long-running commands: `start` (the embedded stack: Temporal dev server, worker, HTTP server),
// `worker` and `server` (one role each, for scaling out against TEMPORAL_ADDRESS).
import { DefaultLogger, Runtime as TemporalRuntime } from '@temporalio/worker';
import { readConfig, DEFAULT_WRITE_KEY, type Config } from '../core/config';
import { InvalidFileError } from '../core/errors';
import { EMBEDDED_SQLITE_PRAGMAS, startDevServer, type DevServer } from './dev-server';
import { loadFlowFiles } from './project-files';
import { loadSegments, segmentIdsIn } from './segment-files';
import { startRuntime, type Runtime } from './runtime';

type Role = 'all' | 'worker' | 'server';

/** Resolves on the first SIGINT or SIGTERM. */
function shutdownRequested(): Promise<string> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
}

function refuseInvalidFiles(config: Config): void {
  const { problems } = loadFlowFiles(config.flowsDir, config.templatesDir, segmentIdsIn(config.segmentsDir));
  if (problems.some((p) => p.severity === 'error')) throw new InvalidFileError(problems);
  loadSegments(config.segmentsDir);
}

export async function serve(role: Role): Promise<number> {
  const config = readConfig(process.env, process.cwd());
  // The SDK's INFO lines (bundling, worker state) drown the start-up summary; warnings still show.
  TemporalRuntime.install({ logger: new DefaultLogger('WARN') });
  refuseInvalidFiles(config); // before any server starts: name the file and line, change nothing
  let devServer: DevServer | null = null;
  let runtime: Runtime | null = null;
  try {
    if (!config.temporalAddress) {
      if (role !== 'all') throw new Error(`microflows ${role} needs TEMPORAL_ADDRESS (the embedded Temporal server runs only with \`microflows start\`)`);
      console.log(`[microflows] starting the Temporal dev server (data in ${config.dataDir}/temporal.sqlite) ...`);
      devServer = await startDevServer({
        dataDir: config.dataDir,
        port: config.temporalPort,
        uiPort: config.temporalUiPort,
        // The dev server's default rollback journal syncs every commit; WAL roughly halves trigger latency (bench/README.md).
        sqlitePragmas: EMBEDDED_SQLITE_PRAGMAS,
      });
      config.temporalAddress = devServer.address;
    }
    runtime = await startRuntime({ config, worker: role !== 'server', server: role !== 'worker', schedule: role !== 'server', watchTemplates: role === 'all' });
    console.log(`[microflows] ${role === 'all' ? 'embedded stack' : role} running`);
    console.log(`  Temporal:   ${config.temporalAddress}${devServer?.uiUrl ? `  (Web UI ${devServer.uiUrl})` : ''}`);
    if (runtime.url) console.log(`  HTTP API:   ${runtime.url}  (Segment API at /v1/*; GET /api/profiles/:id, /api/outbox)`);
    if (runtime.worker) console.log(`  Worker:     task queue ${config.taskQueue}`);
    if (runtime.url && config.writeKey === DEFAULT_WRITE_KEY) {
      console.log(`  Write key:  ${DEFAULT_WRITE_KEY} (the development default: set MICROFLOWS_WRITE_KEY in production)`);
    }
    console.log(`  Delivery:   ${config.smtpUrl ? 'SMTP' : 'outbox table (GET /api/outbox); set SMTP_URL to send'}`);
    console.log('  Ctrl-C stops everything; starting again resumes flows in flight.');
    const signal = await shutdownRequested();
    console.log(`[microflows] ${signal}: stopping ...`);
    return 0;
  } finally {
    await runtime?.stop();
    await devServer?.stop();
    if (runtime || devServer) console.log('[microflows] stopped');
  }
}
