// `microflows codes import <pool> <file>` and `codes list` as users run them: the real CLI in a child process, on SQLite
// and (with TEST_DATABASE_URL) PostgreSQL. An import reads plain lines or a CSV, skips codes the pool holds, and says
// what it did; a file with a bad line is refused naming file:line and what is wrong, and nothing of it is imported.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { KyselyStore } from '../../store/kysely-store';
import { runCli, type CliRun } from '../support/cli-run';
import { storeBackends } from '../support/store-backends';

for (const backend of storeBackends('codes cli')) {
  backend.describe(`microflows codes: ${backend.name}`, () => {
    let store: KyselyStore;
    let dir: string;

    const microflows = (args: string[]): Promise<CliRun> => runCli(['codes', ...args], { ...backend.env, MICROFLOWS_DATA_DIR: dir });
    const file = (name: string, text: string): string => {
      const at = path.join(dir, name);
      writeFileSync(at, text);
      return at;
    };

    beforeAll(async () => {
      dir = mkdtempSync(path.join(tmpdir(), 'microflows-codes-cli-'));
      store = await backend.open();
    });

    afterAll(async () => {
      await backend.dispose();
      rmSync(dir, { recursive: true, force: true });
    });

    it('imports a CSV with a header, then a plain list, skipping the codes the pool holds', async () => {
      const csv = file('winback.csv', 'code,issued\n  W10-AAA , 2026-01-01\n\nW10-BBB,2026-01-01\n"W10,CCC",2026-01-02\nW10-DDD,2026-01-02\n');
      const first = await microflows(['import', 'winback-10', csv]);
      expect(first).toEqual({ status: 0, stdout: 'imported 4 codes into pool winback-10 (0 already there); winback-10 has 4 unclaimed\n', stderr: '' });
      expect(await store.claimOfferCode({ pool: 'winback-10', deliveryKey: 'flow/winback/ana/1/steps[0]', customerId: 'ana', at: Date.now() })).toMatchObject({ code: 'W10-AAA' });

      const more = await microflows(['import', 'winback-10', file('more.txt', 'W10-AAA\nW10-EEE\nW10-DDD\nW10-FFF\n')]);
      expect(more).toEqual({ status: 0, stdout: 'imported 2 codes into pool winback-10 (2 already there); winback-10 has 5 unclaimed\n', stderr: '' });
      expect(await store.offerCodePools()).toEqual([{ pool: 'winback-10', total: 6, claimed: 1, remaining: 5, low: true }]);

      const listed = await microflows(['list', '--json']);
      expect(listed.status).toBe(0);
      expect(JSON.parse(listed.stdout)).toEqual({ pools: [{ pool: 'winback-10', total: 6, claimed: 1, remaining: 5, low: true }] });
    }, 60_000);

    it('refuses a file with a bad line, naming file:line and what is wrong, and imports nothing of it', async () => {
      const before = await store.tableCounts();
      const bad = file('bad.txt', 'VIP-1\nVIP-2\nVIP 3\nVIP-4\n\n"VIP-\u0007"\n');
      const run = await microflows(['import', 'vip-20', bad]);
      expect(run.status).toBe(1);
      expect(run.stdout).toBe('');
      expect(run.stderr).toContain(`${bad}:3: error: the code "VIP 3" holds a space`);
      expect(run.stderr).toContain(`${bad}:6: error: the code "VIP-\\u0007" holds the unprintable character U+0007`);
      expect(run.stderr).toContain('nothing was imported into pool vip-20');
      expect(await store.tableCounts()).toEqual(before);
      expect((await store.offerCodePools()).map((p) => p.pool)).toEqual(['winback-10']);
    }, 60_000);

    it('refuses a bad pool id, a missing file and a missing argument, saying what to fix', async () => {
      const ok = file('ok.txt', 'A-1\n');
      const runs = await Promise.all([
        microflows(['import', 'Winback 10', ok]),
        microflows(['import', 'vip-20', path.join(dir, 'absent.txt')]),
        microflows(['import', 'vip-20']),
        microflows(['frobnicate']),
      ]);
      expect(runs.map((r) => r.status)).toEqual([1, 1, 1, 1]);
      expect(runs[0]!.stderr).toContain('<pool>: "Winback 10" is not a pool id');
      expect(runs[0]!.stderr).toContain('usage: microflows codes import <pool> <file>');
      expect(runs[1]!.stderr).toContain(`${path.join(dir, 'absent.txt')}: cannot read it`);
      expect(runs[2]!.stderr).toContain('name the pool and the file of codes');
      expect(runs[3]!.stderr).toContain('unknown codes command "frobnicate": import or list');
      expect((await store.offerCodePools()).map((p) => p.pool)).toEqual(['winback-10']);
    }, 60_000);
  });
}
