// The ingest benchmark's load generator. bench/ingest.ts forks it, so that building and sending calls does not
// take CPU from the server's event loop: closed-loop POST /v1/batch (or one call a request to /v1/track) on a few
// keep-alive connections, or open-loop POST /v1/track at a fixed rate. It talks to its parent over the IPC channel only.
import http from 'node:http';
import { callSource, type Call, type CallSource } from './ecommerce-events';
import { clockMs, runOpenLoop, summarize, type LatencySummary } from './open-loop';

interface JobBase {
  url: string;
  writeKey: string;
  /** The key the untimed seeding identifies are sent with (default: writeKey): a shop's server identifies its customers, browsers then send with a client key. */
  seedWriteKey?: string;
  connections: number;
  customers: number;
  newCustomerShare: number;
  seed: number;
  /** Send one identify per returning customer first (untimed), so the measured calls find them known. */
  seedCustomers: boolean;
}

/** Each connection sends its next batch when the last one is answered. */
export interface BatchJob extends JobBase {
  job: 'batch';
  /** 'track': each request is one track call to POST /v1/track (batchSize is then 1), closed-loop as the batches are. */
  endpoint?: 'batch' | 'track';
  batchSize: number;
  warmupEvents: number;
  events: number;
}

/** Calls go out at `rate` per second whatever the answers; latency counts from each call's scheduled time. */
export interface TrackJob extends JobBase {
  job: 'track';
  rate: number;
  warmupSeconds: number;
  seconds: number;
}

export type LoadJob = BatchJob | TrackJob;

export interface BatchResult {
  /** Events the server accepted in the measured part (it answers `accepted` per batch). */
  events: number;
  requests: number;
  seconds: number;
  /** Per request, send to answer. */
  latency: LatencySummary;
  /** Events sent before the measured part: seeding and warm-up. */
  before: number;
}

export interface TrackResult {
  sent: number;
  failures: number;
  failureSamples: string[];
  /** Calls per second actually sent. */
  achievedRate: number;
  /** From each call's scheduled send time to its answer. */
  latency: LatencySummary;
  /** How late the sender itself sent (its own event loop): large values would make the schedule a lie. */
  maxSendLagMs: number;
  /** Calls that reached the store before the measured part (seeding and warm-up, less the warm-up's failures). */
  before: number;
  warmupFailures: number;
  warmupFailureSamples: string[];
}

export type LoadMessage = { kind: 'measuring' } | { kind: 'done'; result: BatchResult | TrackResult } | { kind: 'failed'; message: string };

const REQUEST_TIMEOUT_MS = 120_000;

/** One POST; resolves with the parsed answer when it is 200, rejects otherwise. */
function post(agent: http.Agent, url: URL, authorization: string, body: Buffer): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const headers = { 'content-type': 'application/json', 'content-length': body.length, authorization, 'user-agent': 'analytics-node-next/latest' };
    const req = http.request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', agent, headers, timeout: REQUEST_TIMEOUT_MS }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode !== 200) return reject(new Error(`${url.pathname} answered ${res.statusCode}: ${text.slice(0, 200)}`));
        try {
          resolve(JSON.parse(text) as Record<string, unknown>);
        } catch {
          reject(new Error(`${url.pathname} answered 200 with a body that is not JSON: ${text.slice(0, 200)}`));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${url.pathname}: no answer in ${REQUEST_TIMEOUT_MS / 1000} s`)));
    req.on('error', reject);
    req.end(body);
  });
}

function authorizationOf(writeKey: string): string {
  return `Basic ${Buffer.from(`${writeKey}:`).toString('base64')}`;
}

/** analytics-node's batch body: the calls, the write key again, and the time of sending (the server corrects event times with it). */
function batchBody(calls: Call[], writeKey: string): Buffer {
  return Buffer.from(JSON.stringify({ batch: calls, writeKey, sentAt: new Date().toISOString() }));
}

/** Sends `calls` as batches of `size` on one connection, one after another. */
async function sendAll(agent: http.Agent, url: URL, authorization: string, writeKey: string, calls: Call[], size: number): Promise<void> {
  for (let i = 0; i < calls.length; i += size) await post(agent, url, authorization, batchBody(calls.slice(i, i + size), writeKey));
}

async function runBatch(job: BatchJob, report: (message: LoadMessage) => void): Promise<BatchResult> {
  const single = job.endpoint === 'track';
  const batchUrl = new URL('/v1/batch', job.url);
  const url = single ? new URL('/v1/track', job.url) : batchUrl;
  const authorization = authorizationOf(job.writeKey);
  const batchSize = single ? 1 : job.batchSize;
  // One agent of one socket per lane: a lane is one client, and its customers' calls arrive in the order it made them.
  const lanes = Array.from({ length: job.connections }, (_, lane) => ({
    agent: new http.Agent({ keepAlive: true, maxSockets: 1 }),
    source: callSource({ seed: job.seed + lane, customers: job.customers, newCustomerShare: job.newCustomerShare, lane, lanes: job.connections, trackOnly: single }),
  }));
  let before = 0;
  if (job.seedCustomers) {
    const seedKey = job.seedWriteKey ?? job.writeKey;
    await Promise.all(
      lanes.map(async ({ agent, source }) => {
        const calls = source.seedCalls(Date.now());
        before += calls.length;
        await sendAll(agent, batchUrl, authorizationOf(seedKey), seedKey, calls, 100);
      }),
    );
  }

  /** Every lane sends batches until `total` events have gone out; per-request latencies and accepted counts. */
  const phase = async (total: number) => {
    let remaining = total;
    let accepted = 0;
    const latencies: number[] = [];
    const lane = async (agent: http.Agent, source: CallSource) => {
      while (remaining > 0) {
        const n = Math.min(batchSize, remaining);
        remaining -= n;
        const calls: Call[] = [];
        for (let i = 0; i < n; i++) calls.push(source.next(Date.now()));
        const body = single ? Buffer.from(JSON.stringify({ ...calls[0], sentAt: new Date().toISOString() })) : batchBody(calls, job.writeKey);
        const start = clockMs();
        const answer = await post(agent, url, authorization, body);
        latencies.push(clockMs() - start);
        if (single ? answer.success !== true : answer.accepted !== n || answer.duplicates !== 0) throw new Error(`${single ? 'a track call' : `a batch of ${n}`} was answered ${JSON.stringify(answer).slice(0, 300)}`);
        accepted += n;
      }
    };
    const start = clockMs();
    await Promise.all(lanes.map(({ agent, source }) => lane(agent, source)));
    return { accepted, requests: latencies.length, seconds: (clockMs() - start) / 1000, latency: summarize(latencies) };
  };

  await phase(job.warmupEvents);
  before += job.warmupEvents;
  report({ kind: 'measuring' });
  const measured = await phase(job.events);
  for (const { agent } of lanes) agent.destroy();
  return { events: measured.accepted, requests: measured.requests, seconds: measured.seconds, latency: measured.latency, before };
}

async function runTrack(job: TrackJob, report: (message: LoadMessage) => void): Promise<TrackResult> {
  const authorization = authorizationOf(job.writeKey);
  let before = 0;
  if (job.seedCustomers) {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const calls = callSource({ seed: job.seed, customers: job.customers, newCustomerShare: 0 }).seedCalls(Date.now());
    await sendAll(agent, new URL('/v1/batch', job.url), authorization, job.writeKey, calls, 100);
    agent.destroy();
    before += calls.length;
  }
  const url = new URL('/v1/track', job.url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: job.connections });
  const source = callSource({ seed: job.seed + 1000, customers: job.customers, newCustomerShare: job.newCustomerShare, trackOnly: true });

  const phase = async (count: number) => {
    const answeredAt = new Array<number>(count).fill(0);
    const sends = await runOpenLoop(job.rate, count, async (i) => {
      // Built when it is due, so the event's time is its send time; a Segment library sends one call as soon as it is made.
      const now = Date.now();
      const call = { ...source.next(now), sentAt: new Date(now).toISOString() };
      await post(agent, url, authorization, Buffer.from(JSON.stringify(call)));
      answeredAt[i] = clockMs();
    });
    // sentAt - lag is the scheduled time: a call the sender itself sent late is charged for the delay.
    const latencies = answeredAt.map((at, i) => (at === 0 ? undefined : at - (sends.sentAt[i]! - sends.lagMs[i]!)));
    return { sends, latency: summarize(latencies) };
  };

  const warmup = Math.round(job.rate * job.warmupSeconds);
  const warm = warmup > 0 ? (await phase(warmup)).sends : { failures: 0, failureSamples: [] };
  before += warmup - warm.failures;
  report({ kind: 'measuring' });
  const count = Math.round(job.rate * job.seconds);
  const { sends, latency } = await phase(count);
  agent.destroy();
  return {
    sent: count,
    failures: sends.failures,
    failureSamples: sends.failureSamples,
    achievedRate: sends.achievedRate,
    latency,
    maxSendLagMs: sends.lagMs.reduce((a, b) => Math.max(a, b), 0),
    before,
    warmupFailures: warm.failures,
    warmupFailureSamples: warm.failureSamples,
  };
}

function main(): void {
  const send = (message: LoadMessage) => process.send?.(message);
  process.once('message', (job: LoadJob) => {
    const run = job.job === 'batch' ? runBatch(job, send) : runTrack(job, send);
    run.then(
      (result) => {
        send({ kind: 'done', result });
        process.disconnect();
      },
      (err: unknown) => {
        send({ kind: 'failed', message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
        process.disconnect();
      },
    );
  });
}

if (!process.send) {
  console.error('bench/ingest-load.ts is forked by bench/ingest.ts; run that instead: npx tsx bench/ingest.ts');
  process.exit(2);
}
main();
