// `microflows segments report` and `segments members` as users run them: the real CLI in a child process, reading
// a store (SQLite, and PostgreSQL with TEST_DATABASE_URL) whose memberships the real engine wrote.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { SegmentEngine } from '../../activities/segment-engine';
import { loadSegments } from '../../cli/segment-files';
import type { NewEvent } from '../../store/store';
import { storeBackends } from '../support/store-backends';

const ROOT = path.resolve(__dirname, '../..');
const NOW = Date.now();

function microflows(args: string[], env: Record<string, string>): { status: number | null; stdout: string; stderr: string } {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MICROFLOWS_') && k !== 'DATABASE_URL'));
  const result = spawnSync(process.execPath, ['bin/microflows.js', ...args], { cwd: ROOT, env: { ...clean, MICROFLOWS_SEGMENT_MIN_SIZE: '2', ...env }, encoding: 'utf8', timeout: 60_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function order(customerId: string, at: number): NewEvent {
  return { messageId: `cli-${customerId}-${at}`, type: 'track', customerId, userId: customerId, anonymousId: null, name: 'Order Completed', properties: { total: 30 }, traits: {}, context: {}, timestamp: at, receivedAt: at };
}

for (const backend of storeBackends('segments CLI')) {
  backend.describe(`microflows segments on ${backend.name}`, () => {
    afterAll(() => backend.dispose());

    test('report: sizes, overlap, too small, unused, last sweep; members: a page by customer id', async () => {
      const store = await backend.open();
      const engine = new SegmentEngine({ store, segments: loadSegments(path.join(ROOT, 'segments')), dispatcher: null, log: () => undefined });
      await engine.syncDefinitions();
      await store.recordEvents([order('ana', NOW - 1000), order('bob', NOW - 2000), order('cy', NOW - 90 * 86_400_000)], { needsDispatch: () => false });
      for (const id of ['ana', 'bob', 'cy']) await engine.evaluate(id, NOW);
      await store.markSegmentsSwept(NOW);

      const report = microflows(['segments', 'report', '--json'], backend.env);
      expect(report.stderr).toBe('');
      expect(report.status).toBe(0);
      const parsed = JSON.parse(report.stdout) as { segments: Array<{ id: string; size: number; tooSmall: boolean; unused: boolean; usedByFlows: string[]; lastEvaluatedAt: number }>; overlap: { ids: string[]; matrix: number[][] } };
      const row = (id: string) => parsed.segments.find((s) => s.id === id)!;
      expect(row('recent-purchasers')).toMatchObject({ size: 2, tooSmall: false, lastEvaluatedAt: NOW });
      expect(row('lapsed-customers')).toMatchObject({ size: 1, tooSmall: true, unused: false, usedByFlows: ['winback'] });
      expect(row('browsing-no-purchase')).toMatchObject({ size: 0, usedByFlows: ['browse-abandonment'] });
      expect(row('repeat-visitors')).toMatchObject({ unused: true });
      const i = parsed.overlap.ids.indexOf('recent-purchasers');
      expect(parsed.overlap.matrix[i]![i]).toBe(2);

      const text = microflows(['segments', 'report'], backend.env);
      expect(text.stdout).toMatch(/^lapsed-customers\s+1\s+\S+\s+flow winback\s+TOO SMALL \(< 2\)$/m);
      expect(text.stdout).toMatch(/^repeat-visitors\s+0\s+.*UNUSED \(no flow uses it\)$/m);

      const page = microflows(['segments', 'members', 'recent-purchasers', '--limit', '1'], backend.env);
      expect(page.stdout.split('\n').filter(Boolean).map((l) => l.split('\t')[0])).toEqual(['ana']);
      const next = microflows(['segments', 'members', 'recent-purchasers', '--after', 'ana'], backend.env);
      expect(next.stdout.split('\n').filter(Boolean).map((l) => l.split('\t')[0])).toEqual(['bob']);
      const unknown = microflows(['segments', 'members', 'vips'], backend.env);
      expect(unknown.status).toBe(1);
      expect(unknown.stderr).toContain('no segment "vips"');
    }, 60_000);
  });
}
