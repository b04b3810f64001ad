// Event → email delivered with the send policy off and on (issue 15: "trigger latency with caps and quiet hours
// enabled against the same run without them, p50 within 10 %"): two runtimes on one dev server, one without a
// policy.yaml and one with caps every bench send passes and quiet hours that never hold now, so each check runs and
// none defers; open-loop `POST /v1/track` at a fixed rate, alternating between the two; the end is the moment a
// local SMTP server has the whole message.
//
//   npm run bench:send-policy
//
// Env (all optional): BENCH_RATE events/s in all, half to each runtime (10), BENCH_SECONDS per round (10),
// BENCH_ROUNDS (3).
import { closeConnections, post } from './bench-http';
import { envNumber } from './bench-env';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { bundleWorkflowCode, DefaultLogger, Runtime as TemporalRuntime } from '@temporalio/worker';
import { DateTime } from 'luxon';
import { SMTPServer } from 'smtp-server';
import { flowRunWorkflowId } from '../core/arbiter-state';
import { quietHoursEnd } from '../core/quiet-hours';
import type { SendPolicy } from '../core/send-policy';
import { FAILURE_CONVERTER_PATH } from '../client/payload-codec';
import { BENCH_ROOT, PROJECT_ROOT, startBenchStack, type BenchStack, type MicroflowsUnderTest } from './embedded-stack';
import { clockMs, mapLimit, runOpenLoop, sleep } from './open-loop';
import { startCpuWindow, waitUntilQuiet, type CpuWindow } from './process-cpu';
import { timestampMs } from './trigger-phases';
import { printTable } from './table';

const FLOW_ID = 'bench-send'; // bench/fixtures/send-policy-flows/bench-send.yaml: a send at once on Product Added
const FLOW_FILE = path.join(BENCH_ROOT, 'fixtures/send-policy-flows/bench-send.yaml');
const POLICY_ZONE = 'America/New_York';
/** The target: p50 with the policy at most this much above p50 without it. */
const TARGET_P50_RATIO = 1.1;
/** Other processes busier than this (% of one core) during a round make its figures suspect. */
const NOISY_OTHER_PCT = 25;
/** Histories read per runtime and round for the sendEmail activity's own time. */
const ACTIVITY_SAMPLES = 50;
/** How long after the last send an email may arrive and still be waited for. */
const DELIVERY_DEADLINE_MS = 60_000;

const settings = {
  rate: envNumber('BENCH_RATE', 10),
  seconds: envNumber('BENCH_SECONDS', 10),
  rounds: Math.round(envNumber('BENCH_ROUNDS', 3)),
};

type PolicySetting = 'off' | 'on';
const SETTINGS: PolicySetting[] = ['off', 'on'];

// --- the policy under test -------------------------------------------------------------------------------

/** Local "HH:MM" in `zone` at `at`. */
function clockIn(zone: string, at: number): string {
  return DateTime.fromMillis(at, { zone }).toFormat('HH:mm');
}

/**
 * The policy file of `on`: two caps a first send always passes (each bench customer is new) and a one-hour quiet
 * window that starts 12 hours from now, less a minute, in POLICY_ZONE: a run of the bench never reaches it, while a
 * customer whose zone is 12 hours ahead is inside it for the next 59 minutes (the policy check below).
 */
function policyFile(now: number): { yaml: string; from: string; to: string } {
  const from = clockIn(POLICY_ZONE, now + 12 * 3_600_000 - 60_000);
  const to = clockIn(POLICY_ZONE, now + 13 * 3_600_000 - 60_000);
  const yaml = [
    `# Written by bench/send-policy-latency.ts at ${new Date(now).toISOString()}: every bench send passes the caps (each`,
    '# customer is new) and falls outside the quiet hours, so both checks run and neither defers.',
    'caps:',
    '  - { name: daily, group: marketing, max: 1, per: 24h }',
    '  - { name: total, max: 5, per: 7d }',
    'on_cap: defer',
    'defer: { max: 48h }',
    `quiet_hours: { from: "${from}", to: "${to}" }`,
    `default_timezone: ${POLICY_ZONE}`,
    '',
  ].join('\n');
  return { yaml, from, to };
}

/** A fixed-offset zone whose clock is 12 hours ahead of POLICY_ZONE's now: inside the quiet window. */
function quietZone(now: number): string {
  let hours = DateTime.fromMillis(now, { zone: POLICY_ZONE }).offset / 60 + 12;
  if (hours > 14) hours -= 24;
  if (!Number.isInteger(hours)) throw new Error(`${POLICY_ZONE} is not a whole number of hours from UTC: pick another POLICY_ZONE`);
  // Etc/GMT names have the sign turned round: Etc/GMT-7 is UTC+7.
  return hours === 0 ? 'UTC' : `Etc/GMT${hours > 0 ? '-' : '+'}${Math.abs(hours)}`;
}

// --- the mail sink ---------------------------------------------------------------------------------------

interface MailSink {
  url: string;
  /** recipient address → clockMs() at which the server had the whole message */
  receivedAt: Map<string, number>;
  close(): Promise<void>;
}

/** A real SMTP server on loopback that keeps only when each recipient's message arrived (no parsing: cheap). */
async function startMailSink(): Promise<MailSink> {
  const receivedAt = new Map<string, number>();
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData(stream, session, callback) {
      stream.on('end', () => {
        const at = clockMs();
        for (const rcpt of session.envelope.rcptTo) if (!receivedAt.has(rcpt.address)) receivedAt.set(rcpt.address, at);
        callback();
      });
      stream.resume();
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.server.address() as AddressInfo;
  return { url: `smtp://127.0.0.1:${port}`, receivedAt, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

// --- calls ------------------------------------------------------------------------------------------------


const emailOf = (customerId: string) => `${customerId}@example.com`;

function identify(url: string, customerId: string, traits: Record<string, unknown> = {}): Promise<void> {
  return post(url, '/v1/identify', { userId: customerId, traits: { email: emailOf(customerId), consent: { email_marketing: true }, ...traits } });
}

function productAdded(url: string, customerId: string): Promise<void> {
  return post(url, '/v1/track', { userId: customerId, event: 'Product Added', properties: { product_id: 'p-1', name: 'Trail shoe', price: 89, category: 'Shoes' } });
}

/** Waits until every address has mail, or the deadline; returns the addresses still without. */
async function awaitMail(sink: MailSink, addresses: string[], deadline: number): Promise<string[]> {
  for (;;) {
    const missing = addresses.filter((a) => !sink.receivedAt.has(a));
    if (missing.length === 0 || Date.now() > deadline) return missing;
    await sleep(50);
  }
}

// --- statistics -------------------------------------------------------------------------------------------

interface Percentiles {
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

/** Nearest-rank percentiles; a missing sample (no email) counts as infinitely late. */
function percentiles(samples: Array<number | undefined>): Percentiles {
  const sorted = samples.map((s) => s ?? Number.POSITIVE_INFINITY).sort((a, b) => a - b);
  const at = (p: number) => (sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!);
  return { p50: at(0.5), p95: at(0.95), p99: at(0.99), max: at(1) };
}

const PHASES = ['event sent → flow run started', 'run started → sendEmail scheduled', 'sendEmail scheduled → picked up', 'sendEmail picked up → completed'] as const;
type Phase = (typeof PHASES)[number];
/** The sendEmail activity's own time: where the policy's checks run. */
const RAN: Phase = 'sendEmail picked up → completed';

/**
 * Where the time goes, for ≤ ACTIVITY_SAMPLES runs: server timestamps from each flow run's history, ms per phase.
 * The policy's checks are all in the last phase, the sendEmail activity's own time.
 */
async function phaseTimes(mf: MicroflowsUnderTest, customers: string[], sentAt: number[]): Promise<Record<Phase, number[]>> {
  const every = Math.max(1, Math.floor(customers.length / ACTIVITY_SAMPLES));
  const sampled = customers.map((id, k) => [id, sentAt[k]!] as const).filter((_, k) => k % every === 0);
  const phases = Object.fromEntries(PHASES.map((p) => [p, [] as number[]])) as Record<Phase, number[]>;
  await mapLimit(sampled, 8, async ([customerId, sent]) => {
    const events = (await mf.client.workflow.getHandle(flowRunWorkflowId(FLOW_ID, customerId, 1)).fetchHistory()).events ?? [];
    const runStarted = events.find((e) => e.workflowExecutionStartedEventAttributes);
    const scheduled = events.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'sendEmail');
    const scheduledId = String(scheduled?.eventId ?? '-');
    const started = events.find((e) => String(e.activityTaskStartedEventAttributes?.scheduledEventId ?? '') === scheduledId);
    const completed = events.find((e) => String(e.activityTaskCompletedEventAttributes?.scheduledEventId ?? '') === scheduledId);
    const times = [sent, ...[runStarted, scheduled, started, completed].map((e) => timestampMs(e?.eventTime))];
    PHASES.forEach((phase, i) => {
      const [from, to] = [times[i], times[i + 1]];
      if (from !== undefined && to !== undefined) phases[phase].push(to - from);
    });
  });
  return phases;
}

// --- rounds -----------------------------------------------------------------------------------------------

interface RuntimeRound {
  setting: PolicySetting;
  customers: string[];
  /** event sent → email at the sink, ms; undefined when it never came */
  latencies: Array<number | undefined>;
  sendRows: number;
  phases: Record<Phase, number[]>;
}

interface RoundResult {
  round: number;
  runtimes: Record<PolicySetting, RuntimeRound>;
  failures: number;
  achievedRate: number;
  cpu: CpuWindow;
}

type Pair = Record<PolicySetting, MicroflowsUnderTest>;

/**
 * `count` fresh customers per runtime, identified first (untimed); then their events open-loop at `rate` in all,
 * alternating between the runtimes (off, on, on, off, ...: neither always goes first); then waits for every email.
 */
async function runRound(stack: BenchStack, pair: Pair, sink: MailSink, round: number, rate: number, seconds: number, measured = true): Promise<RoundResult> {
  const count = Math.max(1, Math.round((rate * seconds) / 2));
  const customers = Object.fromEntries(SETTINGS.map((s) => [s, Array.from({ length: count }, (_, i) => `bench-sp-${round}-${s}-${i}`)])) as Record<PolicySetting, string[]>;
  await mapLimit(
    SETTINGS.flatMap((s) => customers[s].map((id) => [s, id] as const)),
    16,
    ([s, id]) => identify(pair[s].url, id),
  );
  await waitUntilQuiet(stack.temporalPid);

  const target = (i: number): [PolicySetting, number] => {
    const k = Math.floor(i / 2);
    const first: PolicySetting = k % 2 === 0 ? 'off' : 'on';
    return [i % 2 === 0 ? first : first === 'off' ? 'on' : 'off', k];
  };
  const window = startCpuWindow(stack.temporalPid);
  const sends = await runOpenLoop(rate, count * 2, (i) => {
    const [s, k] = target(i);
    return productAdded(pair[s].url, customers[s][k]!);
  });
  if (sends.failureSamples.length > 0) console.error(`[bench] round ${round}: ${sends.failures} failed call(s): ${sends.failureSamples.join('; ')}`);
  const deadline = Date.now() + DELIVERY_DEADLINE_MS;
  const missing = await awaitMail(sink, SETTINGS.flatMap((s) => customers[s].map(emailOf)), deadline);
  const cpu = window();
  if (missing.length > 0) console.error(`[bench] round ${round}: ${missing.length} email(s) never came, e.g. ${missing.slice(0, 3).join(', ')}`);

  const sentAt = Object.fromEntries(SETTINGS.map((s) => [s, new Array<number>(count).fill(0)])) as Record<PolicySetting, number[]>;
  sends.sentAt.forEach((at, i) => {
    const [s, k] = target(i);
    sentAt[s][k] = at;
  });
  const runtimes = {} as Record<PolicySetting, RuntimeRound>;
  for (const s of SETTINGS) {
    const mine = new Set(customers[s]);
    const rows = (await pair[s].runtime.store.listSends()).filter((r) => mine.has(r.customerId) && r.status === 'sent' && r.transport === 'smtp');
    runtimes[s] = {
      setting: s,
      customers: customers[s],
      latencies: customers[s].map((id, k) => {
        const at = sink.receivedAt.get(emailOf(id));
        return at === undefined ? undefined : at - sentAt[s][k]!;
      }),
      sendRows: rows.length,
      phases: measured ? await phaseTimes(pair[s], customers[s], sentAt[s]) : (Object.fromEntries(PHASES.map((p) => [p, []])) as unknown as Record<Phase, number[]>),
    };
  }
  await waitUntilQuiet(stack.temporalPid);
  return { round, runtimes, failures: sends.failures, achievedRate: sends.achievedRate, cpu };
}

// --- the policy check -------------------------------------------------------------------------------------

/**
 * Proof that `on` enforces and `off` does not, before anything is measured: a comparison where `on` checked nothing
 * would be worthless. Through each runtime, a customer inside the quiet hours (a profile timezone 12 hours ahead)
 * and a customer already mailed an hour ago (a sent row written to the store, so the daily cap is full) trigger the
 * flow. `off` must mail both; `on` must defer both, with the decision log naming the quiet hours and the cap.
 */
async function checkPolicy(pair: Pair, sink: MailSink): Promise<string[]> {
  const now = Date.now();
  const zone = quietZone(now);
  const quiet = pair.on.runtime.policy.quietHours;
  if (!quiet || quietHoursEnd(now + 5_000, quiet, zone) <= now + 5_000) throw new Error(`policy check: ${zone} is not inside the quiet hours: the bench's arithmetic is wrong`);
  const lines: string[] = [];
  for (const s of SETTINGS) {
    const mf = pair[s];
    const quietId = `bench-sp-check-quiet-${s}`;
    const cappedId = `bench-sp-check-capped-${s}`;
    await identify(mf.url, quietId, { timezone: zone });
    await identify(mf.url, cappedId);
    const earlier = now - 3_600_000;
    const deliveryKey = `bench-sp-check-earlier-${s}`;
    await mf.runtime.store.claimSend({
      deliveryKey,
      customerId: cappedId,
      flowId: FLOW_ID,
      flowVersion: 1,
      workflowId: `bench-sp-check/${cappedId}`,
      nodeId: 'earlier',
      template: 'bench-reminder',
      to: emailOf(cappedId),
      subject: 'an earlier email',
      transport: 'smtp',
      scheduledAt: earlier,
    });
    await mf.runtime.store.completeSend(deliveryKey, `<${deliveryKey}@bench>`, earlier);
    await productAdded(mf.url, quietId);
    await productAdded(mf.url, cappedId);

    const deferral = async (customerId: string, needle: string): Promise<string | null> => {
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline) {
        const found = (await mf.runtime.store.decisionsOf(customerId)).find((d) => d.outcome === 'deferred' && d.reason.includes(needle));
        if (found) return found.reason;
        await sleep(200);
      }
      return null;
    };
    if (s === 'off') {
      const missing = await awaitMail(sink, [emailOf(quietId), emailOf(cappedId)], Date.now() + 30_000);
      if (missing.length > 0) throw new Error(`policy check: send-policy/off did not mail ${missing.join(', ')} within 30 s`);
      lines.push(`send-policy/off: the customer in quiet hours (${zone}) and the customer mailed an hour ago were both mailed: ok`);
    } else {
      const quietReason = await deferral(quietId, 'quiet hours');
      const capReason = await deferral(cappedId, 'cap daily');
      const mailed = [quietId, cappedId].filter((id) => sink.receivedAt.has(emailOf(id)));
      if (!quietReason || !capReason || mailed.length > 0) {
        throw new Error(`policy check: send-policy/on should have deferred both; quiet: ${quietReason ?? 'no deferral'}; cap: ${capReason ?? 'no deferral'}; mailed: ${mailed.join(', ') || 'none'}`);
      }
      lines.push(`send-policy/on: deferred "${quietReason}"; deferred "${capReason}": ok`);
    }
  }
  return lines;
}

// --- report -----------------------------------------------------------------------------------------------

function ms(value: number): string {
  if (!Number.isFinite(value)) return 'never';
  return value < 10 ? value.toFixed(1) : value.toFixed(0);
}

function pct(value: number | null): string {
  return value === null ? 'n/a' : `${value.toFixed(0)}%`;
}

const median = (values: number[]) => percentiles(values).p50;

function noisy(r: RoundResult): boolean {
  return (r.cpu.otherPct ?? 0) > NOISY_OTHER_PCT;
}

const ROUND_COLUMNS = ['round', 'policy', 'sent', 'emails', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms', 'sendEmail ran p50 ms', 'sent/s', 'node cpu', 'temporal cpu', 'other cpu', 'iowait'];

function roundRows(r: RoundResult): string[][] {
  return SETTINGS.map((s) => {
    const rt = r.runtimes[s];
    const p = percentiles(rt.latencies);
    return [
      String(r.round),
      s,
      String(rt.customers.length),
      String(rt.latencies.filter((l) => l !== undefined).length),
      ms(p.p50),
      ms(p.p95),
      ms(p.p99),
      ms(p.max),
      ms(median(rt.phases[RAN])),
      r.achievedRate.toFixed(1),
      pct(r.cpu.nodePct),
      pct(r.cpu.temporalPct),
      `${pct(r.cpu.otherPct)}${noisy(r) ? ' *' : ''}`,
      pct(r.cpu.iowaitPct),
    ];
  });
}

function ratioText(on: number, off: number): string {
  const ratio = on / off;
  return `${ratio.toFixed(3)} (${ratio >= 1 ? '+' : '−'}${Math.abs((ratio - 1) * 100).toFixed(1)} %)`;
}

function report(results: RoundResult[], checks: string[], policy: { yaml: string }): void {
  console.log('\n== results ==');
  console.log(`policy.yaml of send-policy/on:\n${policy.yaml.replace(/^/gm, '    ')}`);
  for (const line of checks) console.log(`policy check ${line}`);
  console.log('');
  printTable(ROUND_COLUMNS, results.flatMap(roundRows), [1]);
  if (results.some(noisy)) console.log(`* other processes used more than ${NOISY_OTHER_PCT}% of a core during this round: its figures are suspect`);

  const pooled = (s: PolicySetting) => ({
    latency: percentiles(results.flatMap((r) => r.runtimes[s].latencies)),
    phase: (p: Phase) => median(results.flatMap((r) => r.runtimes[s].phases[p])),
  });
  const off = pooled('off');
  const on = pooled('on');
  const row = (name: string, a: number, b: number) => [name, ms(a), ms(b), `${b - a >= 0 ? '+' : '−'}${ms(Math.abs(b - a))}`, ratioText(b, a)];
  console.log(`\nevent → email delivered, all ${results.length} round(s) together (${results.reduce((n, r) => n + r.runtimes.off.customers.length, 0)} emails per policy setting):\n`);
  printTable(
    ['ms', 'policy off', 'policy on', 'on − off', 'on / off'],
    [
      row('p50', off.latency.p50, on.latency.p50),
      row('p95', off.latency.p95, on.latency.p95),
      row('p99', off.latency.p99, on.latency.p99),
    ],
    [0],
  );
  console.log(`\nwhere the time goes (p50 of each phase, ms; server times from ≤ ${ACTIVITY_SAMPLES} flow runs' histories per round; the policy's checks are in the last):\n`);
  printTable(
    ['phase', 'policy off', 'policy on', 'on − off', 'on / off'],
    PHASES.map((p) => row(p, off.phase(p), on.phase(p))),
    [0],
  );
  const ratio = on.latency.p50 / off.latency.p50;
  // Each round compares events sent side by side, so its ratio is a paired figure; their median resists a round that
  // other work on the machine slowed down more than the rest (pooled percentiles are dominated by that round).
  const roundRatios = results.map((r) => percentiles(r.runtimes.on.latencies).p50 / percentiles(r.runtimes.off.latencies).p50);
  const quiet = results.filter((r) => !noisy(r));
  const quietText =
    quiet.length === 0
      ? `no round was quiet (other cpu ≤ ${NOISY_OTHER_PCT}%)`
      : `${quiet.length} quiet round(s) pooled: on / off ${ratioText(percentiles(quiet.flatMap((r) => r.runtimes.on.latencies)).p50, percentiles(quiet.flatMap((r) => r.runtimes.off.latencies)).p50)}`;
  const complete = results.every((r) => r.failures === 0 && SETTINGS.every((s) => r.runtimes[s].latencies.every((l) => l !== undefined) && r.runtimes[s].sendRows === r.runtimes[s].customers.length));
  console.log(
    `\ntarget: p50 with caps and quiet hours within ${((TARGET_P50_RATIO - 1) * 100).toFixed(0)} % of p50 without — on / off ${ratioText(on.latency.p50, off.latency.p50)}: ` +
      `${ratio <= TARGET_P50_RATIO && complete ? 'PASS' : 'FAIL'}${complete ? '' : ' (some events got no email or failed: see above)'}${results.some(noisy) ? ' (noisy rounds: see *)' : ''}`,
  );
  console.log(`p50 ratio per round: ${roundRatios.map((x) => x.toFixed(3)).join(', ')}; median ${median(roundRatios).toFixed(3)}; ${quietText}`);
}

function machineInfo(): string {
  const cpus = os.cpus();
  let temporalVersion = 'unknown';
  try {
    temporalVersion = fs.readFileSync(path.join(PROJECT_ROOT, '.temporal/bin/temporal.version'), 'utf8').trim();
  } catch {
    /* a temporal binary from PATH or TEMPORAL_CLI: version not pinned */
  }
  const load = os.loadavg().map((l) => l.toFixed(2)).join(' ');
  return [
    `machine: ${cpus.length} cpus × ${cpus[0]?.model.trim() ?? 'unknown'}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, ${os.platform()} ${os.release()} ${os.arch()}, load average ${load}`,
    `node ${process.version}, temporal CLI ${temporalVersion}, ${new Date().toISOString()}`,
  ].join('\n');
}

// --- main -------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  TemporalRuntime.install({
    logger: new DefaultLogger('WARN', (entry) => {
      if (!entry.message.startsWith('No activities registered')) console.error(`[temporal ${entry.level}] ${entry.message}`, entry.meta ?? '');
    }),
  });
  console.log('send policy latency on the embedded stack: POST /v1/track (Product Added, fresh customer) → the email at a local SMTP server, policy.yaml off and on');
  console.log(machineInfo());
  console.log(`settings: ${settings.rounds} round(s) of ${settings.seconds} s at ${settings.rate}/s in all, alternating between the runtimes (BENCH_ROUNDS, BENCH_SECONDS, BENCH_RATE)`);
  const began = Date.now();

  const flowsRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'microflows-bench-policy-'));
  const sink = await startMailSink();
  let stack: BenchStack | null = null;
  try {
    const policy = policyFile(Date.now());
    const flowsDir = (s: PolicySetting) => path.join(flowsRoot, s);
    for (const s of SETTINGS) {
      fs.mkdirSync(flowsDir(s));
      fs.copyFileSync(FLOW_FILE, path.join(flowsDir(s), path.basename(FLOW_FILE)));
    }
    fs.writeFileSync(path.join(flowsDir('on'), 'policy.yaml'), policy.yaml);

    const logger = { log: () => undefined, trace: () => undefined, debug: () => undefined, info: () => undefined, warn: () => undefined, error: (m: string) => console.error(m) };
    const [workflowBundle, noopBundle] = await Promise.all([
      bundleWorkflowCode({ workflowsPath: require.resolve('../workflows'), failureConverterPath: FAILURE_CONVERTER_PATH, logger }),
      bundleWorkflowCode({ workflowsPath: path.join(BENCH_ROOT, 'noop-workflow.ts'), logger }),
    ]);
    // Payload encryption on in both, as `microflows start` runs; dev server SQLite in WAL mode, likewise.
    stack = await startBenchStack({
      sqlitePragmas: ['journal_mode=wal', 'synchronous=normal'],
      runtimes: SETTINGS.map((s) => ({ name: `send-policy-${s}`, encryption: 'on' as const, env: { MICROFLOWS_FLOWS_DIR: flowsDir(s), SMTP_URL: sink.url } })),
      workflowBundle,
      noopBundle,
    });
    const pair = Object.fromEntries(SETTINGS.map((s, i) => [s, stack!.microflows[i]!])) as Pair;
    const loaded = (p: SendPolicy) => `${p.caps.length} cap(s), quiet hours ${p.quietHours ? 'set' : 'none'}, default_timezone ${p.defaultTimezone}`;
    if (pair.off.runtime.policy.caps.length > 0 || pair.off.runtime.policy.quietHours) throw new Error(`send-policy/off loaded a policy: ${loaded(pair.off.runtime.policy)}`);
    if (pair.on.runtime.policy.caps.length !== 2 || !pair.on.runtime.policy.quietHours) throw new Error(`send-policy/on did not load the bench policy: ${loaded(pair.on.runtime.policy)}`);
    console.log(`loaded: send-policy/off ${loaded(pair.off.runtime.policy)}; send-policy/on ${loaded(pair.on.runtime.policy)}, quiet ${policy.from}-${policy.to}`);

    // Warm-up, unmeasured: JIT, the workflow VM context, prepared statements, gRPC channels, SMTP.
    await runRound(stack, pair, sink, 0, settings.rate, 2, false);
    const checks = await checkPolicy(pair, sink);
    for (const line of checks) console.log(`policy check ${line}`);

    const results: RoundResult[] = [];
    for (let round = 1; round <= settings.rounds; round++) {
      // The quiet window is 12 hours away; this only guards a bench left running for half a day.
      if (quietHoursEnd(Date.now(), pair.on.runtime.policy.quietHours, POLICY_ZONE) > Date.now()) throw new Error('the quiet hours have begun: rerun the bench');
      const result = await runRound(stack, pair, sink, round, settings.rate, settings.seconds);
      results.push(result);
      const line = SETTINGS.map((s) => `${s} p50 ${ms(percentiles(result.runtimes[s].latencies).p50)} ms p99 ${ms(percentiles(result.runtimes[s].latencies).p99)} ms`).join(' | ');
      console.log(`  round ${round}: ${line}  (other cpu ${pct(result.cpu.otherPct)})`);
    }
    for (const mf of stack.microflows) {
      const failures = mf.runtime.dispatcher.failureCount;
      if (failures > 0) console.error(`[bench] ${mf.name}: ${failures} dispatch failure(s), e.g.: ${mf.log.slice(0, 3).join(' | ')}`);
    }
    report(results, checks, policy);
  } finally {
    await stack?.stop();
    await sink.close();
    closeConnections();
    fs.rmSync(flowsRoot, { recursive: true, force: true });
  }
  console.log(
    '\noff, on: POST /v1/track → the whole email at a local SMTP server (HTTP, store write, trigger, arbiter, flow run start, the sendEmail activity:' +
      '\nconsent, suppression, for `on` quiet hours and the caps transaction, render, SMTP); two runtimes on one dev server, each with its own store and' +
      `\ntask queue, the same flow; events alternate between them. sendEmail ran: the activity picked up → completed, from ≤ ${ACTIVITY_SAMPLES}` +
      `\nruns' histories per round. cpu: % of one core from the first event to the last email (node = this process; other = the rest of the machine).`,
  );
  console.log(`total ${((Date.now() - began) / 1000).toFixed(0)} s`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
