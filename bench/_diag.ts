import { bundleWorkflowCode, DefaultLogger, Runtime as TemporalRuntime } from '@temporalio/worker';
import path from 'node:path';
import http from 'node:http';
import { startBenchStack, BENCH_ROOT, BENCH_WRITE_KEY } from './embedded-stack';
import { clockMs, mapLimit, runOpenLoop, sleep, summarize } from './open-loop';
import { startCpuWindow } from './process-cpu';

const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
const authorization = `Basic ${Buffer.from(`${BENCH_WRITE_KEY}:`).toString('base64')}`;
function post(baseUrl: string, route: string, body: unknown): Promise<void> {
  const url = new URL(route, baseUrl);
  const data = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': data.length, authorization } }, (res) => { res.resume(); res.on('end', () => resolve()); });
    req.on('error', reject); req.end(data);
  });
}
function tms(ts: any): number { return Number(String(ts.seconds)) * 1000 + (ts.nanos ?? 0) / 1e6; }

async function main() {
  TemporalRuntime.install({ logger: new DefaultLogger('WARN') });
  const q = { log: () => undefined, trace: () => undefined, debug: () => undefined, info: () => undefined, warn: () => undefined, error: (m: string) => console.error(m) };
  const [workflowBundle, noopBundle] = await Promise.all([
    bundleWorkflowCode({ workflowsPath: require.resolve('../workflows'), logger: q }),
    bundleWorkflowCode({ workflowsPath: path.join(BENCH_ROOT, 'noop-workflow.ts'), logger: q }),
  ]);
  const stack = await startBenchStack({ sqlitePragmas: (process.env.PRAGMAS ?? 'journal_mode=wal,synchronous=normal').split(',').filter(Boolean), workflowBundle, noopBundle });
  try {
    for (const rate of (process.env.RATES ?? '5,30').split(',').map(Number)) {
      const count = rate * Number(process.env.SECS ?? 5);
      const ids = Array.from({ length: count }, (_, i) => `diag-${rate}-${i}`);
      await mapLimit(ids, 16, (id) => post(stack.url, '/v1/identify', { userId: id, traits: { email: `${id}@x.com`, consent: { email_marketing: true } } }));
      const responded: number[] = []; const dispatched = new Map<number, number>();
      const off = stack.runtime.dispatcher.onDispatched((o) => dispatched.set(o.eventId, clockMs()));
      const w = startCpuWindow(stack.temporalPid);
      const r = await runOpenLoop(rate, count, async (i) => { await post(stack.url, '/v1/track', { userId: ids[i], event: 'Product Added', properties: { product_id: 'p1' } }); responded[i] = clockMs(); });
      const cpu = w();
      await stack.runtime.dispatcher.idle(); await sleep(3000); off();
      const disp = [...dispatched.values()].sort((a, b) => a - b);
      const phases: Record<string, number[]> = {};
      const add = (k: string, v: number) => (phases[k] ??= []).push(v);
      await mapLimit(ids, 16, async (id, i) => {
        const sent = r.sentAt[i]!;
        add('http response', responded[i]! - sent);
        const h = await stack.client.workflow.getHandle(`customer/${id}`).fetchHistory();
        const ev = h.events ?? [];
        const t = (pred: (e: any) => boolean) => { const e = ev.find(pred); return e ? tms(e.eventTime) : NaN; };
        const started = t((e) => e.workflowExecutionStartedEventAttributes);
        const wftStarted = t((e) => e.workflowTaskStartedEventAttributes);
        const wftCompleted = t((e) => e.workflowTaskCompletedEventAttributes);
        const initiated = t((e) => e.startChildWorkflowExecutionInitiatedEventAttributes);
        const childStarted = t((e) => e.childWorkflowExecutionStartedEventAttributes);
        const d = await stack.client.workflow.getHandle(`flow/bench-trigger/${id}/1`).describe();
        add('customer wf started (signalWithStart)', started - sent);
        add('first WFT started', wftStarted - sent);
        add('first WFT completed', wftCompleted - sent);
        add('startChild initiated', initiated - sent);
        add('child started (describe)', d.startTime.getTime() - sent);
        add('childStarted event in parent', childStarted - sent);
        add('#WFT in customer', ev.filter((e: any) => e.workflowTaskCompletedEventAttributes).length);
        add('#events', ev.length);
      });
      console.log(`rate ${rate}/s: node ${cpu.nodePct.toFixed(0)}% temporal ${cpu.temporalPct?.toFixed(0)}% loop ${(cpu.eventLoop*100).toFixed(0)}%  dispatched=${disp.length}`);
      for (const [k, v] of Object.entries(phases)) { const s = summarize(v); console.log(`  ${k.padEnd(40)} p50 ${s.p50.toFixed(1)}  p99 ${s.p99.toFixed(1)}  max ${s.max.toFixed(1)}`); }
    }
  } finally { await stack.stop(); agent.destroy(); }
}
main().catch((e) => { console.error(e); process.exit(1); });
