// `microflows <command> --help` (and -h, and `microflows help <command>`) as users run it: the real CLI in a child
// process prints that command's usage and exits 0, for every command the top-level usage lists, starting nothing.
import { inPool } from '../support/pool';
import { runCli } from '../support/cli-run';


interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}


/** Runs the CLI asynchronously, so a few runs overlap (each pays the TypeScript start-up). */
function microflows(args: string[]): Promise<Run> {
  // Nothing to start from here: no flows, no store, so a command that ignored --help would fail or hang, not pass.
  return runCli(args, { MICROFLOWS_FLOWS_DIR: '/nonexistent/flows', MICROFLOWS_DATA_DIR: '/nonexistent/data', PORT: '1' }, (name) => name === 'TEMPORAL_ADDRESS');
}

/** The command names the top-level usage lists, one per line under "commands:". */
function commandsListed(usage: string): string[] {
  const lines = usage.split('\n');
  const start = lines.indexOf('commands:');
  return lines
    .slice(start + 1)
    .filter((line) => /^ {2}\S/.test(line))
    .map((line) => line.trim().split(/\s+/)[0]!);
}

test('every command prints its own usage for --help, -h and `help <command>`, exits 0 and starts nothing', async () => {
  const top = await microflows(['--help']);
  expect(top.status).toBe(0);
  const names = commandsListed(top.stdout);
  expect(names).toEqual(expect.arrayContaining(['validate', 'diagram', 'import', 'preview', 'segments', 'keys', 'codes', 'start', 'worker', 'server']));
  expect(top.stdout).toContain('microflows <command> --help (or -h) prints the usage of one command.');

  const asks = names.flatMap((name) => [[name, '--help'], [name, '-h'], ['help', name], ...(name === 'preview' ? [[name, 'cart-reminder', '--profile', 'x', '--help']] : []), ...(name === 'keys' ? [[name, 'create', '--kind', 'admin', '--help']] : [])]);
  const runs = await inPool(asks, 3, microflows);
  const answers = asks.map((args, i) => {
    const run = runs[i]!;
    return { args: args.join(' '), status: run.status, stderr: run.stderr, firstLine: run.stdout.split('\n')[0], explains: run.stdout.split('\n').length > 2 };
  });
  expect(answers).toEqual(
    asks.map((args) => {
      const name = args[0] === 'help' ? args[1]! : args[0]!;
      return { args: args.join(' '), status: 0, stderr: '', firstLine: expect.stringMatching(new RegExp(`^usage: microflows ${name}\\b`)), explains: true };
    }),
  );
  // Each command has its own text, not one shared page.
  expect(new Set(names.map((name) => runs[asks.findIndex((a) => a[0] === name && a[1] === '--help')]!.stdout)).size).toBe(names.length);
}, 180_000);

test('help for a command that does not exist fails and lists the commands', async () => {
  const run = await microflows(['help', 'frobnicate']);
  expect(run.status).toBe(1);
  expect(run.stderr).toContain('unknown command "frobnicate"');
  expect(run.stderr).toContain('validate [paths...]');
});
