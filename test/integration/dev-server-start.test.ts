// Starting the embedded dev server when the real Temporal CLI panics at start (it picks internal ports itself, and one
// taken between its choice and its bind ends in a Go nil-pointer panic): the start is tried again, and the server that
// comes up serves; an exit that is not a panic is reported at once, with the server's last output. The fault is
// injected by a wrapper in front of the real CLI (TEMPORAL_CLI_PATH), which panics on its first run.
import fs from 'node:fs';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { DevServerExitedError, startDevServer } from '../../cli/dev-server';
import { temporalCliPath } from '../../cli/temporal-binaries';
import { tempDir } from '../support/stack';

const realCli = temporalCliPath();
let dir: string;
const previous = process.env.TEMPORAL_CLI_PATH;

beforeEach(() => {
  dir = tempDir('dev-start');
});

afterEach(() => {
  if (previous === undefined) delete process.env.TEMPORAL_CLI_PATH;
  else process.env.TEMPORAL_CLI_PATH = previous;
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A CLI that fails its first `failures` runs with `failure` on stderr and exit code 2, then is the real one. */
function flakyCli(failures: number, failure: string): { runs: () => number } {
  const counter = path.join(dir, 'runs');
  const script = path.join(dir, 'temporal');
  fs.writeFileSync(
    script,
    `#!/bin/sh\nn=$(cat '${counter}' 2>/dev/null || echo 0)\necho $((n + 1)) > '${counter}'\n` +
      `if [ "$n" -lt ${failures} ]; then echo '${failure}' >&2; exit 2; fi\nexec '${realCli}' "$@"\n`,
  );
  fs.chmodSync(script, 0o755);
  process.env.TEMPORAL_CLI_PATH = script;
  return { runs: () => Number(fs.readFileSync(counter, 'utf8').trim()) };
}

test('a panic while starting: started again, and the second server serves', async () => {
  const cli = flakyCli(1, 'panic: runtime error: invalid memory address or nil pointer dereference');
  const logged: string[] = [];
  const server = await startDevServer({ dataDir: path.join(dir, 'data'), headless: true, log: (line) => logged.push(line) });
  try {
    expect(cli.runs()).toBe(2);
    expect(logged.join('')).toContain('the dev server panicked while starting; starting it again (attempt 2 of 3)');
    const connection = await Connection.connect({ address: server.address });
    try {
      expect((await connection.healthService.check({})).status).toBe(1); // SERVING
    } finally {
      await connection.close();
    }
  } finally {
    await server.stop();
  }
}, 120_000);

test('an exit that is not a panic is reported at once, with the output; a panic every time gives up after 3 starts', async () => {
  const refused = flakyCli(5, 'Error: unable to open database file');
  const error = await startDevServer({ dataDir: path.join(dir, 'data'), headless: true }).catch((err: unknown) => err);
  expect(error).toBeInstanceOf(DevServerExitedError);
  expect((error as Error).message).toMatch(/exited with code 2 before serving on 127\.0\.0\.1:\d+; its last output:\nError: unable to open database file/);
  expect(refused.runs()).toBe(1);

  fs.rmSync(path.join(dir, 'runs'));
  const panicking = flakyCli(5, 'panic: runtime error: invalid memory address or nil pointer dereference');
  await expect(startDevServer({ dataDir: path.join(dir, 'data'), headless: true })).rejects.toThrow(/panic: runtime error/);
  expect(panicking.runs()).toBe(3);
}, 120_000);
