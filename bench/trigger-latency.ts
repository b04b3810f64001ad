// Event → flow run started on the embedded stack: open-loop `POST /v1/track` at fixed rates, latency to
// the server-side startTime of flow/<flow>/<customer>/1, against a bare `client.workflow.start` baseline
// on the same dev server; once with the dev server's default SQLite settings and once with WAL pragmas.
//
//   npm run bench:trigger-latency
//
// Env (all optional): BENCH_SECONDS per fixed rate (10), BENCH_RAMP_SECONDS per ramp step (5),
// BENCH_RAMP_STEP above 50/s (50), BENCH_MAX_RATE ramp cap (250), BENCH_DRAIN_SECONDS a run may start
// after the last send and still count as keeping up (5), BENCH_SQLITE modes to run (default,wal).
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { bundleWorkflowCode, DefaultLogger, Runtime as TemporalRuntime, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { flowRunWorkflowId } from '../core/arbiter-state';
import { BENCH_ROOT, BENCH_WRITE_KEY, PROJECT_ROOT, startBenchStack, type BenchStack } from './embedded-stack';
import { clockMs, mapLimit, runOpenLoop, sleep, summarize, type LatencySummary } from './open-loop';
import { startCpuWindow, waitUntilQuiet, type CpuWindow } from './process-cpu';
import { PHASES, timestampMs, triggerPhases, type Phase, type TriggerSample } from './trigger-phases';
import { printTable } from './table';

const FLOW_ID = 'bench-trigger'; // bench/fixtures/flows/bench-trigger.yaml
const TARGET_RATE = 50;
const TARGET_P99_MS = 500;
const FIXED_RATES = [10, TARGET_RATE];
/** Below the target rate the ramp refines in steps of 10/s, so a scenario that fails at 50/s still gets a figure. */
const FINE_STEP = 10;
/** Other processes busier than this (% of one core) during a step make its figures suspect. */
const NOISY_OTHER_PCT = 25;

function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name}=${raw}: give a positive number`);
  return value;
}

const settings = {
  seconds: envNumber('BENCH_SECONDS', 10),
  rampSeconds: envNumber('BENCH_RAMP_SECONDS', 5),
  rampStep: envNumber('BENCH_RAMP_STEP', 50),
  maxRate: envNumber('BENCH_MAX_RATE', 250),
  drainMs: envNumber('BENCH_DRAIN_SECONDS', 5) * 1000,
};

interface SqliteMode {
  name: string;
  pragmas: string[];
}

const SQLITE_MODES: SqliteMode[] = [
  { name: 'default', pragmas: [] },
  { name: 'wal', pragmas: ['journal_mode=wal', 'synchronous=normal'] },
];

const SCENARIOS = ['microflows', 'baseline'] as const;
type Scenario = (typeof SCENARIOS)[number];

interface StepResult {
  scenario: Scenario;
  rate: number;
  sent: number;
  /** calls that failed: an HTTP status other than 200, or a rejected start */
  errors: number;
  /** runs that started no later than drainMs after the last send */
  started: number;
  /** over every call; a late run counts with its real start time */
  latency: LatencySummary;
  achievedRate: number;
  cpu: CpuWindow;
  sustained: boolean;
  why: string;
  phases?: Map<Phase, LatencySummary>;
  /** Wall time of the step's parts, seconds: identify, send, wait for every run and read its startTime, settle. */
  took?: { prepare: number; send: number; collect: number; settle: number };
}

type Measured = Omit<StepResult, 'sustained' | 'why'>;

// --- calls -------------------------------------------------------------------------------------------

const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
const authorization = `Basic ${Buffer.from(`${BENCH_WRITE_KEY}:`).toString('base64')}`;

function post(baseUrl: string, route: string, body: unknown): Promise<void> {
  const url = new URL(route, baseUrl);
  const data = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const headers = { 'content-type': 'application/json', 'content-length': data.length, authorization };
    const req = http.request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', agent, headers }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`${route} answered ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(data);
  });
}

function identify(stack: BenchStack, customerId: string): Promise<void> {
  return post(stack.url, '/v1/identify', { userId: customerId, traits: { email: `${customerId}@example.com`, consent: { email_marketing: true } } });
}

function productAdded(stack: BenchStack, customerId: string): Promise<void> {
  return post(stack.url, '/v1/track', { userId: customerId, event: 'Product Added', properties: { product_id: 'p-1', name: 'Trail shoe', price: 89, category: 'Shoes' } });
}

/**
 * The server-side startTime (epoch ms) of each workflow, from describe(). Ids not found yet are retried
 * until the deadline, so a run that starts late still counts with its real, late time.
 */
async function serverStartTimes(client: Client, workflowIds: string[], deadline: number): Promise<Array<number | undefined>> {
  const times = new Array<number | undefined>(workflowIds.length).fill(undefined);
  let pending = workflowIds.map((_, i) => i);
  for (;;) {
    const missing: number[] = [];
    await mapLimit(pending, 32, async (i) => {
      try {
        const description = await client.workflow.getHandle(workflowIds[i]!).describe();
        times[i] = timestampMs(description.raw.workflowExecutionInfo?.startTime) ?? description.startTime.getTime();
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) throw err;
        missing.push(i);
      }
    });
    pending = missing;
    if (pending.length === 0 || Date.now() > deadline) return times;
    await sleep(1000);
  }
}

// --- steps -------------------------------------------------------------------------------------------

function judge(m: Measured): StepResult {
  const fail = (why: string): StepResult => ({ ...m, sustained: false, why });
  if (m.errors > 0) return fail(`${m.errors} call(s) failed`);
  if (m.started < m.sent) return fail(`${m.sent - m.started} run(s) started > ${settings.drainMs / 1000} s after the last send`);
  if (m.achievedRate < m.rate * 0.95) return fail(`the sender only reached ${m.achievedRate.toFixed(0)}/s`);
  if (m.latency.p99 > TARGET_P99_MS) return fail(`p99 > ${TARGET_P99_MS} ms`);
  return { ...m, sustained: true, why: '' };
}

function measure(scenario: Scenario, rate: number, sentAt: number[], startTimes: Array<number | undefined>, sends: { failures: number; achievedRate: number }, cpu: CpuWindow): Measured {
  const inTime = sentAt[sentAt.length - 1]! + settings.drainMs;
  return {
    scenario,
    rate,
    sent: sentAt.length,
    errors: sends.failures,
    started: startTimes.filter((t) => t !== undefined && t <= inTime).length,
    latency: summarize(startTimes.map((t, i) => (t === undefined ? undefined : t - sentAt[i]!))),
    achievedRate: sends.achievedRate,
    cpu,
  };
}

let nonce = 0;

/** Seconds since the last call, for the step's `took`. */
function stopwatch(): () => number {
  let last = Date.now();
  return () => {
    const now = Date.now();
    const seconds = (now - last) / 1000;
    last = now;
    return seconds;
  };
}

/** Identifies `count` fresh customers (untimed), then sends their Product Added events open-loop at `rate`. */
async function microflowsStep(stack: BenchStack, rate: number, seconds: number, tag: string, breakdown = false): Promise<StepResult> {
  const count = Math.max(1, Math.round(rate * seconds));
  const run = `${tag}-${rate}-${nonce++}`;
  const customers = Array.from({ length: count }, (_, i) => `bench-${run}-${i}`);
  const lap = stopwatch();
  await mapLimit(customers, 16, (id) => identify(stack, id));
  const prepare = lap();

  const respondedAt = new Array<number>(count).fill(0);
  const window = startCpuWindow(stack.temporalPid);
  const sends = await runOpenLoop(rate, count, async (i) => {
    await productAdded(stack, customers[i]!);
    respondedAt[i] = clockMs();
  });
  const cpu = window();
  const send = lap();
  if (sends.failureSamples.length > 0) console.error(`[bench] microflows ${rate}/s: ${sends.failureSamples.join('; ')}`);

  // An overloaded step's backlog finishes here, before the next step, so it is not charged to that one.
  await stack.runtime.dispatcher.idle();
  const runIds = customers.map((id) => flowRunWorkflowId(FLOW_ID, id, 1));
  const startTimes = await serverStartTimes(stack.client, runIds, Date.now() + 120_000);
  const result = judge(measure('microflows', rate, sends.sentAt, startTimes, sends, cpu));
  if (breakdown) {
    const every = Math.max(1, Math.floor(count / 50));
    const samples: TriggerSample[] = [];
    for (let i = 0; i < count; i += every) {
      samples.push({ customerId: customers[i]!, sentAt: sends.sentAt[i]!, respondedAt: respondedAt[i]!, runStartedAt: startTimes[i] });
    }
    result.phases = await triggerPhases(stack.client, FLOW_ID, samples);
  }
  const collect = lap();
  await waitUntilQuiet(stack.temporalPid);
  result.took = { prepare, send, collect, settle: lap() };
  return result;
}

/** A bare client.workflow.start of a no-op workflow per call, open-loop at `rate`. */
async function baselineStep(stack: BenchStack, rate: number, seconds: number, tag: string): Promise<StepResult> {
  const count = Math.max(1, Math.round(rate * seconds));
  const run = `${tag}-${rate}-${nonce++}`;
  const workflowIds = Array.from({ length: count }, (_, i) => `bench-noop/${run}/${i}`);

  const lap = stopwatch();
  const window = startCpuWindow(stack.temporalPid);
  const sends = await runOpenLoop(rate, count, async (i) => {
    await stack.client.workflow.start('benchNoopWorkflow', { taskQueue: stack.noopTaskQueue, workflowId: workflowIds[i]!, args: [] });
  });
  const cpu = window();
  const send = lap();
  if (sends.failureSamples.length > 0) console.error(`[bench] baseline ${rate}/s: ${sends.failureSamples.join('; ')}`);

  const startTimes = await serverStartTimes(stack.client, workflowIds, Date.now() + 120_000);
  const collect = lap();
  await waitUntilQuiet(stack.temporalPid);
  return { ...judge(measure('baseline', rate, sends.sentAt, startTimes, sends, cpu)), took: { prepare: 0, send, collect, settle: lap() } };
}

// --- report ------------------------------------------------------------------------------------------

function ms(value: number): string {
  if (!Number.isFinite(value)) return 'never';
  return value < 10 ? value.toFixed(1) : value.toFixed(0);
}

function took(r: StepResult): string {
  if (!r.took) return '';
  const { prepare, send, collect, settle } = r.took;
  return `  [${prepare > 0 ? `identify ${prepare.toFixed(1)} s, ` : ''}send ${send.toFixed(1)} s, collect ${collect.toFixed(1)} s, settle ${settle.toFixed(1)} s]`;
}

function pct(value: number | null): string {
  return value === null ? 'n/a' : `${value.toFixed(0)}%`;
}

const STEP_COLUMNS = ['scenario', 'rate', 'sent', 'started', 'p50 ms', 'p99 ms', 'max ms', 'sent/s', 'node cpu', 'temporal cpu', 'other cpu', 'iowait', 'js loop', 'sustained'];

function noisy(r: StepResult): boolean {
  return (r.cpu.otherPct ?? 0) > NOISY_OTHER_PCT;
}

function stepRow(r: StepResult): string[] {
  return [
    r.scenario,
    `${r.rate}/s`,
    String(r.sent),
    String(r.started),
    ms(r.latency.p50),
    ms(r.latency.p99),
    ms(r.latency.max),
    r.achievedRate.toFixed(0),
    pct(r.cpu.nodePct),
    pct(r.cpu.temporalPct),
    `${pct(r.cpu.otherPct)}${noisy(r) ? ' *' : ''}`,
    pct(r.cpu.iowaitPct),
    `${(r.cpu.eventLoop * 100).toFixed(0)}%`,
    r.sustained ? 'yes' : `no: ${r.why}`,
  ];
}

interface ModeReport {
  mode: SqliteMode;
  steps: StepResult[];
  best: Record<Scenario, { rate: number | null; failedAt: number | null }>;
}

function targetLine(report: ModeReport): string {
  const at = (scenario: Scenario) => report.steps.find((s) => s.scenario === scenario && s.rate === TARGET_RATE);
  const mf = at('microflows');
  const base = at('baseline');
  const pass = mf !== undefined && mf.errors === 0 && mf.started === mf.sent && mf.latency.p99 <= TARGET_P99_MS;
  return (
    `target: p99 ≤ ${TARGET_P99_MS} ms at ${TARGET_RATE} triggers/s — microflows p99 ${mf ? ms(mf.latency.p99) : '?'} ms: ${pass ? 'PASS' : 'FAIL'}` +
    `   | baseline (bare start) p99 ${base ? ms(base.latency.p99) : '?'} ms`
  );
}

function sustainedLine(report: ModeReport): string {
  const text = (scenario: Scenario) => {
    const b = report.best[scenario];
    const rate = b.rate === null ? `< ${FIXED_RATES[0]}/s` : `${b.rate}/s`;
    return b.failedAt === null ? `${rate} (the cap)` : `${rate} (fails at ${b.failedAt}/s)`;
  };
  return `highest sustained rate (p99 ≤ ${TARGET_P99_MS} ms, every run started): microflows ${text('microflows')} | baseline ${text('baseline')}`;
}

function printPhases(report: ModeReport): void {
  const steps = report.steps.filter((s) => s.phases);
  if (steps.length === 0) return;
  console.log(`\nwhere a trigger's time goes (ms from the send, p50 / p99 over ≤ 50 sampled customers; server timestamps from customer/<id>'s history):`);
  const columns = ['phase', ...steps.map((s) => `${s.rate}/s`)];
  const rows = PHASES.map((phase) => [phase, ...steps.map((s) => `${ms(s.phases!.get(phase)!.p50)} / ${ms(s.phases!.get(phase)!.p99)}`)]);
  printTable(columns, rows, [0]);
}

function machineInfo(): string {
  const cpus = os.cpus();
  let temporalVersion = 'unknown';
  try {
    temporalVersion = fs.readFileSync(path.join(PROJECT_ROOT, '.temporal/bin/temporal.version'), 'utf8').trim();
  } catch {
    /* a temporal binary from PATH or TEMPORAL_CLI: version not pinned */
  }
  return [
    `machine: ${cpus.length} cpus × ${cpus[0]?.model.trim() ?? 'unknown'}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, ${os.platform()} ${os.release()} ${os.arch()}`,
    `node ${process.version}, temporal CLI ${temporalVersion}, ${new Date().toISOString()}`,
  ].join('\n');
}

// --- main --------------------------------------------------------------------------------------------

interface Bundles {
  workflowBundle: WorkflowBundleWithSourceMap;
  noopBundle: WorkflowBundleWithSourceMap;
}

async function bundles(): Promise<Bundles> {
  const logger = { log: () => undefined, trace: () => undefined, debug: () => undefined, info: () => undefined, warn: () => undefined, error: (m: string) => console.error(m) };
  const [workflowBundle, noopBundle] = await Promise.all([
    bundleWorkflowCode({ workflowsPath: require.resolve('../workflows'), logger }),
    bundleWorkflowCode({ workflowsPath: path.join(BENCH_ROOT, 'noop-workflow.ts'), logger }),
  ]);
  return { workflowBundle, noopBundle };
}

/**
 * The rates a scenario is tried at after the fixed ones: upward in 10/s steps from the last passing fixed
 * rate when it failed one, otherwise upward in rampStep from the top fixed rate; it stops at the first failure.
 */
function nextRate(steps: StepResult[], scenario: Scenario): number | null {
  const mine = steps.filter((s) => s.scenario === scenario);
  const failed = mine.filter((s) => !s.sustained).map((s) => s.rate);
  const passed = mine.filter((s) => s.sustained).map((s) => s.rate);
  const lowestFail = failed.length ? Math.min(...failed) : null;
  const highestPass = passed.filter((r) => lowestFail === null || r < lowestFail).reduce((a, b) => Math.max(a, b), 0);
  if (lowestFail !== null) {
    if (lowestFail > TARGET_RATE) return null;
    const next = highestPass + FINE_STEP;
    return next < lowestFail ? next : null;
  }
  const next = Math.max(...FIXED_RATES, highestPass) + settings.rampStep;
  return next <= settings.maxRate ? next : null;
}

async function runMode(mode: SqliteMode, code: Bundles): Promise<ModeReport> {
  const pragmas = mode.pragmas.length === 0 ? 'no --sqlite-pragma' : mode.pragmas.map((p) => `--sqlite-pragma ${p}`).join(' ');
  console.log(`\n== dev server SQLite: ${mode.name} (${pragmas}) ==`);
  const stack = await startBenchStack({ sqlitePragmas: mode.pragmas, ...code });
  const steps: StepResult[] = [];
  const record = (r: StepResult) => {
    steps.push(r);
    console.log(`  ${r.scenario.padEnd(10)} ${String(r.rate).padStart(4)}/s  p50 ${ms(r.latency.p50)} ms  p99 ${ms(r.latency.p99)} ms  started ${r.started}/${r.sent}${r.sustained ? '' : `  — ${r.why}`}${took(r)}`);
  };
  try {
    // Warm-up, unmeasured: JIT, the workflow VM context, the store's prepared statements, gRPC channels.
    await microflowsStep(stack, 20, 2, `${mode.name}-warm`);
    await baselineStep(stack, 20, 2, `${mode.name}-warm`);

    for (const rate of FIXED_RATES) {
      record(await microflowsStep(stack, rate, settings.seconds, mode.name, true));
      record(await baselineStep(stack, rate, settings.seconds, mode.name));
    }
    // The two scenarios take turns, so each sees a dev server database of about the same size.
    for (;;) {
      const due = SCENARIOS.map((s) => [s, nextRate(steps, s)] as const).filter(([, rate]) => rate !== null);
      if (due.length === 0) break;
      for (const [scenario, rate] of due) {
        record(scenario === 'microflows' ? await microflowsStep(stack, rate!, settings.rampSeconds, mode.name) : await baselineStep(stack, rate!, settings.rampSeconds, mode.name));
      }
    }
    const failures = stack.runtime.dispatcher.failureCount;
    if (failures > 0) console.error(`[bench] ${failures} dispatch failure(s), e.g.: ${stack.log.slice(0, 3).join(' | ')}`);
  } finally {
    await stack.stop();
  }
  const best = Object.fromEntries(
    SCENARIOS.map((scenario) => {
      const mine = steps.filter((s) => s.scenario === scenario);
      const failedAt = mine.filter((s) => !s.sustained).reduce<number | null>((a, s) => (a === null ? s.rate : Math.min(a, s.rate)), null);
      const rate = mine.filter((s) => s.sustained && (failedAt === null || s.rate < failedAt)).reduce<number | null>((a, s) => Math.max(a ?? 0, s.rate), null);
      return [scenario, { rate, failedAt }];
    }),
  ) as ModeReport['best'];
  return { mode, steps, best };
}

async function main(): Promise<void> {
  // Workers log workflow task failures at WARN; INFO chatter would drown the table, and so would the
  // no-op worker's notice that it has no activities (by design).
  TemporalRuntime.install({
    logger: new DefaultLogger('WARN', (entry) => {
      if (!entry.message.startsWith('No activities registered')) console.error(`[temporal ${entry.level}] ${entry.message}`, entry.meta ?? '');
    }),
  });
  const wanted = (process.env.BENCH_SQLITE || 'default,wal').split(',').map((m) => m.trim());
  const modes = SQLITE_MODES.filter((m) => wanted.includes(m.name));
  if (modes.length === 0) throw new Error(`BENCH_SQLITE=${process.env.BENCH_SQLITE}: use default, wal or default,wal`);

  console.log('trigger latency on the embedded stack: POST /v1/track (Product Added, fresh customer) → flow run started (server startTime)');
  console.log(machineInfo());
  console.log(
    `settings: ${settings.seconds} s at each of ${FIXED_RATES.join(', ')}/s; ramp steps of ${settings.rampSeconds} s (+${FINE_STEP}/s below ${TARGET_RATE}/s after a failure there, ` +
      `else +${settings.rampStep}/s up to ${settings.maxRate}/s); a run must start within ${settings.drainMs / 1000} s of the last send`,
  );
  const began = Date.now();
  const code = await bundles();
  const reports: ModeReport[] = [];
  try {
    for (const mode of modes) reports.push(await runMode(mode, code));
  } finally {
    agent.destroy();
  }

  for (const report of reports) {
    const pragmas = report.mode.pragmas.length ? report.mode.pragmas.join(', ') : 'the dev server default: rollback journal';
    console.log(`\n== results, dev server SQLite ${report.mode.name} (${pragmas}) ==`);
    const ordered = [...report.steps].sort((a, b) => SCENARIOS.indexOf(a.scenario) - SCENARIOS.indexOf(b.scenario) || a.rate - b.rate);
    printTable(STEP_COLUMNS, ordered.map(stepRow), [0, STEP_COLUMNS.length - 1]);
    if (ordered.some(noisy)) console.log(`* other processes used more than ${NOISY_OTHER_PCT}% of a core during this step: its figures are suspect; rerun on a quiet machine`);
    console.log(targetLine(report));
    console.log(sustainedLine(report));
    printPhases(report);
  }
  console.log(
    '\nmicroflows: POST /v1/track → startTime of flow/<flow>/<customer>/1 (HTTP, store write, trigger check, signalWithStart, arbiter decision, startChild).' +
      '\nbaseline: client.workflow.start(benchNoopWorkflow) → its startTime, same dev server. cpu: % of one core over the send window' +
      ' (node = this process: sender, HTTP server, store, both workers; other = the rest of the machine; iowait = cores waiting on disk);' +
      '\njs loop: event-loop busy share of this process.',
  );
  console.log(`total ${((Date.now() - began) / 1000).toFixed(0)} s`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
