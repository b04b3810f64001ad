// The long-running commands: `start` (the embedded stack: Temporal dev server, worker, HTTP server),
// `worker` and `server` (one role each, for scaling out against TEMPORAL_ADDRESS).
import { DefaultLogger, Runtime as TemporalRuntime } from '@temporalio/worker';
import { readConfig, DEFAULT_WRITE_KEY, type Config } from '../core/config';
import { ConfigError, InvalidFileError } from '../core/errors';
import { insecureStartMessage, insecureStartProblems, isLoopbackHost } from '../core/start-policy';
import { openStore } from '../store/open-store';
import { DevServerStartAbortedError, EMBEDDED_SQLITE_PRAGMAS, PortInUseError, portIsFree, startDevServer, type DevServer } from './dev-server';
import { loadFlowFiles } from './project-files';
import { loadSegments, segmentIdsIn } from './segment-files';
import { startRuntime, type Runtime } from './runtime';

type Role = 'all' | 'worker' | 'server';

const SHUTDOWN_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/**
 * The first SIGINT, SIGTERM or SIGHUP (a closed terminal) asks for a clean stop, also while starting: `requested`
 * resolves and `signal` aborts. A second one stops the dev server at once and exits: the way out of a stop that hangs.
 */
function shutdownRequests(stopNow: () => Promise<void>): { requested: Promise<string>; signal: AbortSignal; dispose(): void } {
  const abort = new AbortController();
  let resolveRequested: (signal: string) => void = () => undefined;
  const requested = new Promise<string>((resolve) => (resolveRequested = resolve));
  const onSignal = (signal: NodeJS.Signals) => {
    if (!abort.signal.aborted) {
      console.log(`[microflows] ${signal}: stopping ...`);
      abort.abort();
      resolveRequested(signal);
      return;
    }
    console.log(`[microflows] ${signal} again: stopping now`);
    void stopNow().finally(() => process.exit(130));
  };
  for (const signal of SHUTDOWN_SIGNALS) process.on(signal, onSignal);
  return { requested, signal: abort.signal, dispose: () => SHUTDOWN_SIGNALS.forEach((signal) => process.off(signal, onSignal)) };
}

function refuseInvalidFiles(config: Config): void {
  const { problems } = loadFlowFiles(config.flowsDir, config.templatesDir, segmentIdsIn(config.segmentsDir));
  if (problems.some((p) => p.severity === 'error')) throw new InvalidFileError(problems);
  loadSegments(config.segmentsDir);
}

/**
 * A server that reaches beyond loopback with development secrets is refused before anything starts (startRuntime
 * checks again, for the programmatic starts); every fix is listed at once.
 */
async function refuseInsecureStart(config: Config): Promise<void> {
  if (isLoopbackHost(config.host) && isLoopbackHost(config.adminHost ?? config.host)) return;
  const store = await openStore(config);
  try {
    await store.migrate();
    const problems = insecureStartProblems(config, process.env, (await store.activeApiKeys()).some((key) => key.kind === 'admin'));
    if (problems.length > 0) throw new ConfigError(insecureStartMessage(config, problems));
  } finally {
    await store.close();
  }
}

/** The HTTP port, checked before anything starts: found taken only after the dev server ran, the start would fail midway. */
async function refuseTakenHttpPort(config: Config): Promise<void> {
  if (config.port === 0 || (await portIsFree(config.port, config.host))) return;
  throw new PortInUseError(`port ${config.port} on ${config.host} (PORT, the HTTP server's) is in use by another process: stop it (\`lsof -i :${config.port}\` names it) or set PORT to a free port`);
}

/** The codec endpoint the embedded Web UI is given: /codec on the admin surface; null while its port is not known (PORT=0). */
export function codecEndpointOf(config: Pick<Config, 'host' | 'port' | 'adminHost' | 'adminPort'>): string | null {
  const port = config.adminPort ?? config.port;
  if (port === 0) return null;
  const host = config.adminHost ?? config.host;
  const reachable = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return `http://${reachable}:${port}/codec`;
}

export async function serve(role: Role): Promise<number> {
  const config = readConfig(process.env, process.cwd());
  // The SDK's INFO lines (bundling, worker state) drown the start-up summary; warnings still show. No shutdown
  // signals of its own: this function owns them, and stops the worker before the server it talks to.
  TemporalRuntime.install({ logger: new DefaultLogger('WARN'), shutdownSignals: [] });
  refuseInvalidFiles(config); // before any server starts: name the file and line, change nothing
  if (role !== 'worker') {
    await refuseInsecureStart(config);
    await refuseTakenHttpPort(config);
  }
  let devServer: DevServer | null = null;
  let runtime: Runtime | null = null;
  const shutdown = shutdownRequests(async () => {
    await devServer?.stop();
  });
  try {
    if (!config.temporalAddress) {
      if (role !== 'all') throw new Error(`microflows ${role} needs TEMPORAL_ADDRESS (the embedded Temporal server runs only with \`microflows start\`)`);
      try {
        devServer = await startDevServer({
          dataDir: config.dataDir,
          port: config.temporalPort,
          uiPort: config.temporalUiPort,
          // The dev server's default rollback journal syncs every commit; WAL roughly halves trigger latency (bench/README.md).
          sqlitePragmas: EMBEDDED_SQLITE_PRAGMAS,
          // The Web UI decodes encrypted payloads through the admin surface's codec endpoint (README, "Encrypted Temporal payloads").
          ...(codecEndpointOf(config) ? { codecEndpoint: codecEndpointOf(config)! } : {}),
          signal: shutdown.signal,
          onSpawn: () => console.log(`[microflows] starting the Temporal dev server (data in ${config.dataDir}/temporal.sqlite) ...`),
          onOrphanStopped: (orphan) =>
            console.log(`[microflows] stopped the Temporal dev server (pid ${orphan.temporalPid}, port ${orphan.port}) that an earlier start (pid ${orphan.starterPid}) left running`),
        });
      } catch (err) {
        if (err instanceof DevServerStartAbortedError) return 0;
        throw err;
      }
      config.temporalAddress = devServer.address;
    }
    // The worker bundles workflows for several seconds and cannot be interrupted: a stop asked meanwhile waits for it.
    runtime = await startRuntime({ config, worker: role !== 'server', server: role !== 'worker', schedule: role !== 'server', watchTemplates: role === 'all' });
    if (shutdown.signal.aborted) return 0;
    // One write for the whole banner: a reader of the pipe that sees its first line sees all of it.
    const banner: string[] = [];
    banner.push(`[microflows] ${role === 'all' ? 'embedded stack' : role} running`);
    banner.push(`  Temporal:   ${config.temporalAddress}${devServer?.uiUrl ? `  (Web UI ${devServer.uiUrl})` : ''}`);
    if (runtime.url) banner.push(`  HTTP API:   ${runtime.url}  (Segment API at /v1/*, tracking at /t/*, /u/*, webhooks at /webhooks/*)`);
    if (runtime.adminUrl) banner.push(`  Admin API:  ${runtime.adminUrl}/api/*  (Authorization: Bearer <admin key>; GET /api/profiles/:id, /api/outbox)`);
    if (devServer?.uiUrl && codecEndpointOf(config)) {
      banner.push(`  Codec:      ${codecEndpointOf(config)}  (sign in at ${codecEndpointOf(config)}/login for the Web UI to show encrypted payloads)`);
    }
    if (runtime.developmentAdminKey) {
      banner.push(`  Admin key:  ${runtime.developmentAdminKey}  (generated for development, kept in ${config.dataDir}/admin-key; \`microflows keys create\` makes more)`);
    }
    if (runtime.worker) banner.push(`  Worker:     task queue ${config.taskQueue}`);
    if (runtime.url && config.writeKey === DEFAULT_WRITE_KEY) {
      banner.push(`  Write key:  ${DEFAULT_WRITE_KEY} (the development default: set MICROFLOWS_WRITE_KEY in production)`);
    }
    banner.push(`  Delivery:   ${config.smtpUrl ? 'SMTP' : 'outbox table (GET /api/outbox); set SMTP_URL to send'}`);
    banner.push('  Ctrl-C stops everything; starting again resumes flows in flight.');
    console.log(banner.join('\n'));
    // Running on without the dev server would accept events no flow can start from: its exit stops everything.
    const devServerExit = devServer ? devServer.exited.then((code) => ({ code })) : new Promise<never>(() => undefined);
    const ended = await Promise.race([shutdown.requested, devServerExit]);
    if (typeof ended !== 'string') {
      console.error(`[microflows] the Temporal dev server (pid ${devServer?.pid}) exited unexpectedly (code ${ended.code}): stopping`);
      return 1;
    }
    return 0;
  } finally {
    if (shutdown.signal.aborted && !runtime && !devServer) console.log('[microflows] stopped before it had started');
    await runtime?.stop();
    await devServer?.stop();
    shutdown.dispose();
    if (runtime || devServer) console.log('[microflows] stopped');
  }
}
