// Event → flow run started on the embedded stack: open-loop `POST /v1/track` at fixed rates, latency to
// the server-side startTime of flow/<flow>/<customer>/1, with Temporal payload encryption off and on (two
// runtimes on one dev server, their steps interleaved), against a bare `client.workflow.start` baseline on
// the same dev server; per dev server SQLite mode (WAL pragmas, and the default rollback journal).
//
//   npm run bench:trigger-latency
//
// Env (all optional): BENCH_SECONDS per fixed rate (10), BENCH_RAMP_SECONDS per ramp step (5),
// BENCH_RAMP_STEP above 50/s (50), BENCH_MAX_RATE ramp cap (250), BENCH_DRAIN_SECONDS a run may start
// after the last send and still count as keeping up (5), BENCH_ENCRYPTION payload encryption settings to
// run (off,on), BENCH_SQLITE modes to run (wal when both encryption settings run, else default,wal).
import { closeConnections, post } from './bench-http';
import { envNumber } from './bench-env';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { bundleWorkflowCode, DefaultLogger, Runtime as TemporalRuntime, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { customerWorkflowId, flowRunWorkflowId } from '../core/arbiter-state';
import { FAILURE_CONVERTER_PATH } from '../client/payload-codec';
import { ENCRYPTED_ENCODING } from '../core/payload-crypto';
import { BENCH_ROOT, PROJECT_ROOT, startBenchStack, type BenchStack, type Encryption, type MicroflowsUnderTest } from './embedded-stack';
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

const ENCRYPTIONS: Encryption[] = ['off', 'on'];

/** `microflows/off`, `microflows/on` (MICROFLOWS_PAYLOAD_ENCRYPTION) or `baseline`. */
type Scenario = `microflows/${Encryption}` | 'baseline';

function microflowsScenario(encryption: Encryption): Scenario {
  return `microflows/${encryption}`;
}

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


function identify(url: string, customerId: string): Promise<void> {
  return post(url, '/v1/identify', { userId: customerId, traits: { email: `${customerId}@example.com`, consent: { email_marketing: true } } });
}

function productAdded(url: string, customerId: string): Promise<void> {
  return post(url, '/v1/track', { userId: customerId, event: 'Product Added', properties: { product_id: 'p-1', name: 'Trail shoe', price: 89, category: 'Shoes' } });
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
async function microflowsStep(stack: BenchStack, mf: MicroflowsUnderTest, rate: number, seconds: number, tag: string, breakdown = false): Promise<StepResult> {
  const scenario = microflowsScenario(mf.encryption);
  const count = Math.max(1, Math.round(rate * seconds));
  const run = `${tag}-${mf.encryption}-${rate}-${nonce++}`;
  const customers = Array.from({ length: count }, (_, i) => `bench-${run}-${i}`);
  const lap = stopwatch();
  await mapLimit(customers, 16, (id) => identify(mf.url, id));
  const prepare = lap();

  const respondedAt = new Array<number>(count).fill(0);
  const window = startCpuWindow(stack.temporalPid);
  const sends = await runOpenLoop(rate, count, async (i) => {
    await productAdded(mf.url, customers[i]!);
    respondedAt[i] = clockMs();
  });
  const cpu = window();
  const send = lap();
  if (sends.failureSamples.length > 0) console.error(`[bench] ${scenario} ${rate}/s: ${sends.failureSamples.join('; ')}`);

  // An overloaded step's backlog finishes here, before the next step, so it is not charged to that one.
  await mf.runtime.dispatcher.idle();
  const runIds = customers.map((id) => flowRunWorkflowId(FLOW_ID, id, 1));
  const startTimes = await serverStartTimes(mf.client, runIds, Date.now() + 120_000);
  const result = judge(measure(scenario, rate, sends.sentAt, startTimes, sends, cpu));
  if (breakdown) {
    const every = Math.max(1, Math.floor(count / 50));
    const samples: TriggerSample[] = [];
    for (let i = 0; i < count; i += every) {
      samples.push({ customerId: customers[i]!, sentAt: sends.sentAt[i]!, respondedAt: respondedAt[i]!, runStartedAt: startTimes[i] });
    }
    result.phases = await triggerPhases(mf.client, FLOW_ID, samples);
  }
  const collect = lap();
  await waitUntilQuiet(stack.temporalPid);
  result.took = { prepare, send, collect, settle: lap() };
  return result;
}

/**
 * A bare client.workflow.start of a no-op workflow per call, open-loop at `rate`, from a client without a payload
 * codec: Temporal's own floor for a start on this dev server, the same for both encryption settings. (The no-op
 * workflow takes no arguments, so a codec would have nothing to seal on this path anyway.)
 */
async function baselineStep(stack: BenchStack, rate: number, seconds: number, tag: string): Promise<StepResult> {
  const count = Math.max(1, Math.round(rate * seconds));
  const run = `${tag}-${rate}-${nonce++}`;
  const workflowIds = Array.from({ length: count }, (_, i) => `bench-noop/${run}/${i}`);

  const lap = stopwatch();
  const window = startCpuWindow(stack.temporalPid);
  const sends = await runOpenLoop(rate, count, async (i) => {
    await stack.plainClient.workflow.start('benchNoopWorkflow', { taskQueue: stack.noopTaskQueue, workflowId: workflowIds[i]!, args: [] });
  });
  const cpu = window();
  const send = lap();
  if (sends.failureSamples.length > 0) console.error(`[bench] baseline ${rate}/s: ${sends.failureSamples.join('; ')}`);

  const startTimes = await serverStartTimes(stack.plainClient, workflowIds, Date.now() + 120_000);
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
  scenarios: Scenario[];
  steps: StepResult[];
  best: Map<Scenario, { rate: number | null; failedAt: number | null }>;
  /** What the raw histories (no codec) hold, per microflows scenario: the proof that `on` encrypts. */
  payloadCheck: string[];
}

function microflowsScenarios(report: ModeReport): Scenario[] {
  return report.scenarios.filter((s) => s !== 'baseline');
}

function stepAt(report: ModeReport, scenario: Scenario, rate: number): StepResult | undefined {
  return report.steps.find((s) => s.scenario === scenario && s.rate === rate);
}

function targetLine(report: ModeReport): string {
  const base = stepAt(report, 'baseline', TARGET_RATE);
  const verdicts = microflowsScenarios(report).map((scenario) => {
    const mf = stepAt(report, scenario, TARGET_RATE);
    const pass = mf !== undefined && mf.errors === 0 && mf.started === mf.sent && mf.latency.p99 <= TARGET_P99_MS;
    return `${scenario} p99 ${mf ? ms(mf.latency.p99) : '?'} ms: ${pass ? 'PASS' : 'FAIL'}`;
  });
  return `target: p99 ≤ ${TARGET_P99_MS} ms at ${TARGET_RATE} triggers/s — ${verdicts.join(' | ')}   | baseline (bare start) p99 ${base ? ms(base.latency.p99) : '?'} ms`;
}

function sustainedText(report: ModeReport, scenario: Scenario): string {
  const b = report.best.get(scenario)!;
  const rate = b.rate === null ? `< ${FIXED_RATES[0]}/s` : `${b.rate}/s`;
  return b.failedAt === null ? `${rate} (the cap)` : `${rate} (fails at ${b.failedAt}/s)`;
}

function sustainedLine(report: ModeReport): string {
  return `highest sustained rate (p99 ≤ ${TARGET_P99_MS} ms, every run started): ${report.scenarios.map((s) => `${s} ${sustainedText(report, s)}`).join(' | ')}`;
}

/** Encryption on against off, side by side: what turning MICROFLOWS_PAYLOAD_ENCRYPTION on costs a trigger. */
function encryptionLine(report: ModeReport): string | null {
  const off = microflowsScenario('off');
  const on = microflowsScenario('on');
  if (!report.scenarios.includes(off) || !report.scenarios.includes(on)) return null;
  const delta = (a: number, b: number) => {
    if (!Number.isFinite(a) || !Number.isFinite(b)) return '';
    const d = b - a;
    return ` (${d >= 0 ? '+' : '−'}${ms(Math.abs(d))})`;
  };
  const figures = FIXED_RATES.map((rate) => {
    const a = stepAt(report, off, rate);
    const b = stepAt(report, on, rate);
    if (!a || !b) return `${rate}/s ?`;
    return `${rate}/s p50 ${ms(a.latency.p50)} → ${ms(b.latency.p50)} ms${delta(a.latency.p50, b.latency.p50)}, p99 ${ms(a.latency.p99)} → ${ms(b.latency.p99)} ms${delta(a.latency.p99, b.latency.p99)}`;
  });
  // CPU time per trigger at the lowest rate (both keep up there): less disturbed by other load than latency is.
  const cpuMs = (r: StepResult | undefined) => (r && r.achievedRate > 0 ? (r.cpu.nodePct * 10) / r.achievedRate : NaN);
  const a = stepAt(report, off, FIXED_RATES[0]!);
  const b = stepAt(report, on, FIXED_RATES[0]!);
  const cpu = `; node CPU per trigger at ${FIXED_RATES[0]}/s ${ms(cpuMs(a))} → ${ms(cpuMs(b))} ms, dev server ${ms(((a?.cpu.temporalPct ?? NaN) * 10) / (a?.achievedRate ?? NaN))} → ${ms(((b?.cpu.temporalPct ?? NaN) * 10) / (b?.achievedRate ?? NaN))} ms`;
  return `encryption off → on: ${figures.join('; ')}; sustained ${sustainedText(report, off)} → ${sustainedText(report, on)}${cpu}`;
}

function printPhases(report: ModeReport): void {
  for (const scenario of microflowsScenarios(report)) {
    const steps = report.steps.filter((s) => s.scenario === scenario && s.phases);
    if (steps.length === 0) continue;
    console.log(`\nwhere a trigger's time goes, ${scenario} (ms from the send, p50 / p99 over ≤ 50 sampled customers; server timestamps from customer/<id>'s history):`);
    const columns = ['phase', ...steps.map((s) => `${s.rate}/s`)];
    const rows = PHASES.map((phase) => [phase, ...steps.map((s) => `${ms(s.phases!.get(phase)!.p50)} / ${ms(s.phases!.get(phase)!.p99)}`)]);
    printTable(columns, rows, [0]);
  }
}

// --- the encryption check ----------------------------------------------------------------------------

type HistoryEvent = NonNullable<Awaited<ReturnType<ReturnType<Client['workflow']['getHandle']>['fetchHistory']>>['events']>[number];
type RawPayload = { metadata?: Record<string, Uint8Array> | null };

function payloadDescription(payloads: RawPayload[] | null | undefined): string {
  const first = payloads?.[0];
  if (!first) return 'no payload';
  const text = (key: string) => (first.metadata?.[key] ? Buffer.from(first.metadata[key]!).toString('utf8') : undefined);
  return text('encoding') ?? 'no encoding';
}

/**
 * Triggers one flow for a fresh customer through `mf` and reads, with a client that has no codec, the encoding of
 * the arbiter's signal and the flow run's input as Temporal stored them. Throws when they do not match the setting:
 * a comparison of encryption on and off where `on` did not encrypt would be worthless.
 */
async function checkPayloads(stack: BenchStack, mf: MicroflowsUnderTest, tag: string): Promise<string> {
  const customerId = `bench-${tag}-${mf.encryption}-payload-check`;
  await identify(mf.url, customerId);
  await productAdded(mf.url, customerId);
  await mf.runtime.dispatcher.idle();
  const runId = flowRunWorkflowId(FLOW_ID, customerId, 1);
  // describe() decodes the memo: the runtime's client, which has the codec.
  const [started] = await serverStartTimes(mf.client, [runId], Date.now() + 60_000);
  if (started === undefined) throw new Error(`payload check: ${runId} did not start within 60 s`);
  const eventsOf = async (workflowId: string): Promise<HistoryEvent[]> => (await stack.plainClient.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
  const signal = (await eventsOf(customerWorkflowId(customerId))).find((e) => e.workflowExecutionSignaledEventAttributes);
  const start = (await eventsOf(runId)).find((e) => e.workflowExecutionStartedEventAttributes);
  const signalEncoding = payloadDescription(signal?.workflowExecutionSignaledEventAttributes?.input?.payloads);
  const inputEncoding = payloadDescription(start?.workflowExecutionStartedEventAttributes?.input?.payloads);
  const wanted = (encoding: string) => (mf.encryption === 'on' ? encoding === ENCRYPTED_ENCODING : encoding !== ENCRYPTED_ENCODING && encoding !== 'no payload');
  const line = `${microflowsScenario(mf.encryption)}: customer/<id> signal ${signalEncoding}, ${FLOW_ID} run input ${inputEncoding}`;
  if (!wanted(signalEncoding) || !wanted(inputEncoding)) throw new Error(`payload check failed, encryption ${mf.encryption} but ${line}`);
  return `${line}: ok`;
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
    bundleWorkflowCode({ workflowsPath: require.resolve('../workflows'), failureConverterPath: FAILURE_CONVERTER_PATH, logger }),
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

async function runMode(mode: SqliteMode, encryptions: Encryption[], code: Bundles): Promise<ModeReport> {
  const pragmas = mode.pragmas.length === 0 ? 'no --sqlite-pragma' : mode.pragmas.map((p) => `--sqlite-pragma ${p}`).join(' ');
  console.log(`\n== dev server SQLite: ${mode.name} (${pragmas}); payload encryption ${encryptions.join(', ')} ==`);
  const stack = await startBenchStack({ sqlitePragmas: mode.pragmas, encryptions, ...code });
  const scenarios: Scenario[] = [...stack.microflows.map((mf) => microflowsScenario(mf.encryption)), 'baseline'];
  const runners = new Map<Scenario, (rate: number, seconds: number, breakdown: boolean) => Promise<StepResult>>([
    ...stack.microflows.map((mf) => [microflowsScenario(mf.encryption), (rate: number, seconds: number, breakdown: boolean) => microflowsStep(stack, mf, rate, seconds, mode.name, breakdown)] as const),
    ['baseline', (rate: number, seconds: number) => baselineStep(stack, rate, seconds, mode.name)] as const,
  ]);
  // The microflows scenarios swap places every round, so neither always runs right after the other.
  const order = (round: number) => {
    const microflows = scenarios.filter((s) => s !== 'baseline');
    return [...(round % 2 === 0 ? microflows : microflows.reverse()), 'baseline' as const];
  };
  const steps: StepResult[] = [];
  const payloadCheck: string[] = [];
  const record = (r: StepResult) => {
    steps.push(r);
    console.log(`  ${r.scenario.padEnd(14)} ${String(r.rate).padStart(4)}/s  p50 ${ms(r.latency.p50)} ms  p99 ${ms(r.latency.p99)} ms  started ${r.started}/${r.sent}${r.sustained ? '' : `  — ${r.why}`}${took(r)}`);
  };
  try {
    // Warm-up, unmeasured: JIT, the workflow VM context, the store's prepared statements, gRPC channels.
    for (const mf of stack.microflows) await microflowsStep(stack, mf, 20, 2, `${mode.name}-warm`);
    await baselineStep(stack, 20, 2, `${mode.name}-warm`);
    for (const mf of stack.microflows) payloadCheck.push(await checkPayloads(stack, mf, mode.name));
    for (const line of payloadCheck) console.log(`  payload check (raw history, no codec) ${line}`);

    let round = 0;
    for (const rate of FIXED_RATES) {
      for (const scenario of order(round++)) record(await runners.get(scenario)!(rate, settings.seconds, true));
    }
    // The scenarios take turns, so each sees a dev server database of about the same size.
    for (;;) {
      const due = order(round++)
        .map((s) => [s, nextRate(steps, s)] as const)
        .filter(([, rate]) => rate !== null);
      if (due.length === 0) break;
      for (const [scenario, rate] of due) record(await runners.get(scenario)!(rate!, settings.rampSeconds, false));
    }
    for (const mf of stack.microflows) {
      const failures = mf.runtime.dispatcher.failureCount;
      if (failures > 0) console.error(`[bench] ${microflowsScenario(mf.encryption)}: ${failures} dispatch failure(s), e.g.: ${mf.log.slice(0, 3).join(' | ')}`);
    }
  } finally {
    await stack.stop();
  }
  const best = new Map(
    scenarios.map((scenario) => {
      const mine = steps.filter((s) => s.scenario === scenario);
      const failedAt = mine.filter((s) => !s.sustained).reduce<number | null>((a, s) => (a === null ? s.rate : Math.min(a, s.rate)), null);
      const rate = mine.filter((s) => s.sustained && (failedAt === null || s.rate < failedAt)).reduce<number | null>((a, s) => Math.max(a ?? 0, s.rate), null);
      return [scenario, { rate, failedAt }];
    }),
  );
  return { mode, scenarios, steps, best, payloadCheck };
}

/** A comma-separated list of `allowed` names from the environment, or the fallback; an unknown name stops the bench. */
function envList<T extends string>(name: string, allowed: readonly T[], fallback: T[]): T[] {
  const raw = process.env[name];
  if (!raw) return fallback;
  const wanted = raw.split(',').map((m) => m.trim());
  const unknown = wanted.filter((m) => !(allowed as readonly string[]).includes(m));
  if (unknown.length > 0 || wanted.length === 0) throw new Error(`${name}=${raw}: use a comma-separated list of ${allowed.join(', ')}`);
  return allowed.filter((m) => wanted.includes(m));
}

async function main(): Promise<void> {
  // Workers log workflow task failures at WARN; INFO chatter would drown the table, and so would the
  // no-op worker's notice that it has no activities (by design).
  TemporalRuntime.install({
    logger: new DefaultLogger('WARN', (entry) => {
      if (!entry.message.startsWith('No activities registered')) console.error(`[temporal ${entry.level}] ${entry.message}`, entry.meta ?? '');
    }),
  });
  const encryptions = envList('BENCH_ENCRYPTION', ENCRYPTIONS, ENCRYPTIONS);
  // Comparing encryption adds a third scenario to each mode; to keep the default run about as long as before, it
  // runs on WAL only (what `microflows start` runs). The rollback journal stays one setting away.
  const modeNames = envList(
    'BENCH_SQLITE',
    SQLITE_MODES.map((m) => m.name),
    encryptions.length > 1 ? ['wal'] : ['default', 'wal'],
  );
  const modes = SQLITE_MODES.filter((m) => modeNames.includes(m.name));

  console.log('trigger latency on the embedded stack: POST /v1/track (Product Added, fresh customer) → flow run started (server startTime)');
  console.log(machineInfo());
  console.log(
    `settings: ${settings.seconds} s at each of ${FIXED_RATES.join(', ')}/s; ramp steps of ${settings.rampSeconds} s (+${FINE_STEP}/s below ${TARGET_RATE}/s after a failure there, ` +
      `else +${settings.rampStep}/s up to ${settings.maxRate}/s); a run must start within ${settings.drainMs / 1000} s of the last send; ` +
      `payload encryption: ${encryptions.join(', ')} (BENCH_ENCRYPTION); dev server SQLite: ${modeNames.join(', ')} (BENCH_SQLITE)`,
  );
  const began = Date.now();
  const code = await bundles();
  const reports: ModeReport[] = [];
  try {
    for (const mode of modes) reports.push(await runMode(mode, encryptions, code));
  } finally {
    closeConnections();
  }

  for (const report of reports) {
    const pragmas = report.mode.pragmas.length ? report.mode.pragmas.join(', ') : 'the dev server default: rollback journal';
    console.log(`\n== results, dev server SQLite ${report.mode.name} (${pragmas}) ==`);
    for (const line of report.payloadCheck) console.log(`payload check (raw history, no codec) ${line}`);
    const ordered = [...report.steps].sort((a, b) => report.scenarios.indexOf(a.scenario) - report.scenarios.indexOf(b.scenario) || a.rate - b.rate);
    printTable(STEP_COLUMNS, ordered.map(stepRow), [0, STEP_COLUMNS.length - 1]);
    if (ordered.some(noisy)) console.log(`* other processes used more than ${NOISY_OTHER_PCT}% of a core during this step: its figures are suspect; rerun on a quiet machine`);
    console.log(targetLine(report));
    console.log(sustainedLine(report));
    const encryption = encryptionLine(report);
    if (encryption) console.log(encryption);
    printPhases(report);
  }
  console.log(
    '\nmicroflows/off, microflows/on: POST /v1/track → startTime of flow/<flow>/<customer>/1 (HTTP, store write, trigger check, signalWithStart, arbiter decision, startChild),' +
      '\nthrough a runtime with MICROFLOWS_PAYLOAD_ENCRYPTION=false / true; both on the same dev server, each with its own store and task queue, steps interleaved.' +
      '\nbaseline: client.workflow.start(benchNoopWorkflow) → its startTime, same dev server, a client without codec. cpu: % of one core over the send window' +
      ' (node = this process: sender, HTTP servers, stores, all workers; other = the rest of the machine; iowait = cores waiting on disk);' +
      '\njs loop: event-loop busy share of this process.',
  );
  console.log(`total ${((Date.now() - began) / 1000).toFixed(0)} s`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
