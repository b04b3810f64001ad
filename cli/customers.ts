// `microflows customers erase|export`: a customer's right to erasure and to a copy of their data (GDPR articles 17,
// 15 and 20) from the command line, against the store (and, to erase, the Temporal) the environment names.
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { readConfig, type Config } from '../core/config';
import { isMicroflowsError } from '../core/errors';
import { openStore } from '../store/open-store';
import type { Store } from '../store/store';
import { eraseCustomerEverywhere, temporalTerminator, TEMPORAL_CHECK_TIMEOUT_MS, type ErasureReport } from '../server/customer-erasure';
import { erasureNaming } from '../client/payload-keys';
import { readDevServerRecord } from './dev-server-record';
import { openPayloadEncryption } from './payload-encryption';

export const CUSTOMERS_ARGS = 'erase <id> --yes [--json] | export <id> [--out <file>]';

export const CUSTOMERS_USAGE = `usage: microflows customers erase <id> --yes [--json]
       microflows customers export <id> [--out <file>]

  erase    erases everything held about the customer (an anonymousId or alias names its customer): profile, events,
           identity links, segment memberships, runs, decisions, sends and outbox messages, consent trail and payload
           data key; their addresses stay suppressed as hashes only. Then terminates their arbiter and running flow
           runs in Temporal. Needs --yes. Refuses, erasing nothing, when Temporal does not answer. Prints the erasure's
           id and the rows removed per table (--json: as JSON); the erasure log keeps the same, naming no one.
  export   prints one JSON document with everything held about the customer (profile, aliases, events, consent
           trail, segment memberships, flow runs, decisions, sends, outbox messages, suppression entries);
           --out writes it to a file (readable by its owner only) instead
Reads the store (DATABASE_URL, or the SQLite file); erase connects to TEMPORAL_ADDRESS, or else to the dev server
\`microflows start\` runs (MICROFLOWS_DATA_DIR), or else to 127.0.0.1:TEMPORAL_PORT.`;

async function withStore<T>(config: Config, work: (store: Store) => Promise<T>): Promise<T> {
  const store = openStore(config);
  try {
    await store.migrate();
    return await work(store);
  } finally {
    await store.close();
  }
}

/** Where the Temporal of this deployment is: TEMPORAL_ADDRESS, the embedded dev server `start` recorded, or the default port. */
export function temporalAddressOf(config: Pick<Config, 'temporalAddress' | 'dataDir' | 'temporalPort'>): string {
  if (config.temporalAddress) return config.temporalAddress;
  const record = readDevServerRecord(config.dataDir);
  return `127.0.0.1:${record?.port ?? config.temporalPort}`;
}

/** The one id a subcommand takes, or the problem with what was given. */
function oneId(positionals: string[], sub: string): string | { problem: string } {
  if (positionals.length === 0 || positionals[0] === '') return { problem: `name the customer to ${sub} by their id (a userId, anonymousId or alias)` };
  if (positionals.length > 1) return { problem: `unexpected argument "${positionals[1]}": ${sub} one customer at a time` };
  return positionals[0]!;
}

function counts(removed: Record<string, number>): string {
  return Object.entries(removed)
    .map(([table, n]) => `${table} ${n}`)
    .join(', ');
}

async function erase(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args, allowPositionals: true, options: { yes: { type: 'boolean' }, json: { type: 'boolean' } } });
  } catch (err) {
    console.error(`${(err as Error).message}\nusage: microflows customers erase <id> --yes [--json]`);
    return 1;
  }
  const id = oneId(parsed.positionals, 'erase');
  if (typeof id !== 'string') {
    console.error(`${id.problem}\nusage: microflows customers erase <id> --yes [--json]`);
    return 1;
  }
  if (parsed.values.yes !== true) {
    console.error(`erasing removes everything held about "${id}" for good and terminates their flow runs: add --yes to confirm\nusage: microflows customers erase <id> --yes [--json]`);
    return 1;
  }
  const config = readConfig(process.env, process.cwd());
  const address = temporalAddressOf(config);
  let connection: Connection;
  try {
    connection = await Connection.connect({ address, connectTimeout: TEMPORAL_CHECK_TIMEOUT_MS });
  } catch (err) {
    console.error(
      `cannot reach Temporal at ${address} (${(err as Error)?.message ?? String(err)}): nothing was erased, since the customer's runs must be ` +
        'terminated with it. Start Temporal (or `microflows start`), or set TEMPORAL_ADDRESS to where it runs, and erase again.',
    );
    return 1;
  }
  let report: ErasureReport;
  try {
    const client = new Client({ connection, namespace: config.temporalNamespace });
    report = await withStore(config, async (store) => {
      // Named as the servers name them: the arbiter's id (pseudonymous or not) and the data key to shred.
      const payloads = openPayloadEncryption(config, store);
      await payloads.keyring.ready();
      return eraseCustomerEverywhere({ store, workflows: temporalTerminator(client), ...erasureNaming(payloads.keyring) }, id, 'cli', Date.now());
    });
  } catch (err) {
    if (!isMicroflowsError(err)) throw err;
    console.error(err.message);
    return 1;
  } finally {
    await connection.close();
  }
  if (parsed.values.json === true) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return 0;
  }
  console.log(
    [
      `Erased customer ${JSON.stringify(id)}: erasure ${report.erasureId}.`,
      `Removed: ${counts(report.removed)}.`,
      `${report.addresses} address(es) stay suppressed as hashes only; ${report.terminated} running workflow(s) terminated.`,
    ].join('\n'),
  );
  return 0;
}

async function exportData(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args, allowPositionals: true, options: { out: { type: 'string' } } });
  } catch (err) {
    console.error(`${(err as Error).message}\nusage: microflows customers export <id> [--out <file>]`);
    return 1;
  }
  const id = oneId(parsed.positionals, 'export');
  if (typeof id !== 'string') {
    console.error(`${id.problem}\nusage: microflows customers export <id> [--out <file>]`);
    return 1;
  }
  const config = readConfig(process.env, process.cwd());
  let document;
  try {
    document = await withStore(config, (store) => store.exportCustomer(id));
  } catch (err) {
    if (!isMicroflowsError(err) || err.status !== 404) throw err;
    console.error(err.message);
    return 1;
  }
  const text = `${JSON.stringify(document, null, 2)}\n`;
  if (parsed.values.out === undefined) {
    process.stdout.write(text);
    return 0;
  }
  // Personal data: readable by its owner only, whatever the umask.
  fs.writeFileSync(parsed.values.out, text, { mode: 0o600 });
  fs.chmodSync(parsed.values.out, 0o600);
  console.log(`Wrote ${document.events.length} event(s), ${document.sends.length} send(s) and the rest of what is held about ${JSON.stringify(id)} to ${parsed.values.out}.`);
  return 0;
}

export async function runCustomers(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === 'erase') return erase(rest);
  if (sub === 'export') return exportData(rest);
  console.error(`${sub === undefined ? 'say what to do' : `unknown customers command "${sub}"`}: erase or export\n${CUSTOMERS_USAGE}`);
  return 1;
}
