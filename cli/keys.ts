// `microflows keys create|list|revoke`: the admin and source keys of the store (core/api-keys). A key's text is
// printed once, at creation; the store keeps its SHA-256 digest only.
import { parseArgs } from 'node:util';
import { KEY_KINDS, KEY_PREFIX, keyDigest, newApiKey, type AdminScope, type ApiKeyRecord, type KeyKind } from '../core/api-keys';
import { isMicroflowsError } from '../core/errors';
import { listedApiKey } from '../store/api-keys-store';
import type { Store } from '../store/store';
import { withStore } from './store-command';

export const KEYS_ARGS = 'create --kind <kind> --name <name> [--scope <scopes>] | list [--json] | revoke <id>';

export const KEYS_USAGE = `usage: microflows keys create --kind admin|server|client --name <name> [--scope read,write,admin] [--json]
       microflows keys list [--json]
       microflows keys revoke <id>

  create   makes a key and prints it once (only its SHA-256 digest is stored), with its id
             admin    reaches the admin API (/api) as "Authorization: Bearer <key>"; --scope is required:
                      read (GET), write (read and change), admin (everything, keys included); comma-separated
             server   a Segment write key for your backend: may send every call, history and reserved events
             client   a Segment write key that is safe in a browser (analytics.js): its own visitor's events only
           --json prints {"key": …, "record": …}
  list     every key, revoked ones too, newest first: id, kind, name, scopes, hint, created, revoked (never the key);
           --json prints them as JSON
  revoke   revokes a key by its id (or its hint as listed, or the key itself); it stops working within seconds;
           revoking again changes nothing
Reads the store (DATABASE_URL, or the SQLite file). MICROFLOWS_WRITE_KEY and MICROFLOWS_ADMIN_KEY are keys too but
live in the environment, not in this list.`;

/** Which command-line option a field of core/api-keys' errors is. */
const FLAG_OF: Record<string, string> = { kind: '--kind', name: '--name', scopes: '--scope' };

type CreateFlags = { kind: KeyKind; name: string; scopes: AdminScope[]; json: boolean };

function parseCreate(args: string[]): CreateFlags | string {
  let parsed;
  try {
    parsed = parseArgs({ args, options: { kind: { type: 'string' }, name: { type: 'string' }, scope: { type: 'string', multiple: true }, json: { type: 'boolean' } } });
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
  const { values } = parsed;
  if (values.kind === undefined) return `--kind: say which key to make: ${KEY_KINDS.join(', ')}`;
  if (values.name === undefined) return '--name: give the key a name of 1 to 100 characters (who or what uses it)';
  // `--scope read,write` and `--scope read --scope write` alike.
  const scopes = (values.scope ?? []).flatMap((s) => s.split(',')).map((s) => s.trim()).filter((s) => s !== '');
  return { kind: values.kind as KeyKind, name: values.name, scopes: scopes as AdminScope[], json: values.json === true };
}

function howToUse(record: ApiKeyRecord, key: string): string[] {
  if (record.kind === 'admin') return [`Send it to the admin API as: Authorization: Bearer ${key}`];
  const where = record.kind === 'client' ? 'in the browser (analytics.js writeKey)' : 'from your backend (server-side Segment libraries)';
  return [`Use it as the Segment write key ${where}: the HTTP Basic user name with an empty password, or "writeKey" in the body.`];
}

const when = (at: number | null): string => (at === null ? '-' : new Date(at).toISOString());

/** A name as a table cell: control characters (a name set through the API) would move the cursor or break rows. */
const cell = (text: string): string => (/\p{Cc}/u.test(text) ? JSON.stringify(text) : text);

function keyTable(records: ApiKeyRecord[]): string {
  const header = ['ID', 'KIND', 'NAME', 'SCOPES', 'HINT', 'CREATED', 'REVOKED'];
  const rows = records.map((r) => [r.id, r.kind, cell(r.name), r.scopes.join(',') || '-', r.hint, when(r.createdAt), when(r.revokedAt)]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  return [header, ...rows].map((row) => row.map((text, i) => (i === row.length - 1 ? text : text.padEnd(widths[i]!))).join('  ')).join('\n');
}

/** What was typed: an id or hint, or a whole key (for a leaked key whose id nobody noted), found by its digest. */
async function keyToRevoke(store: Store, given: string): Promise<string> {
  const kind = KEY_KINDS.find((k) => given.startsWith(KEY_PREFIX[k]));
  // A whole key is much longer than its hint (prefix + 4 characters).
  if (kind === undefined || given.length <= KEY_PREFIX[kind].length + 5) return given;
  const digest = keyDigest(given);
  return (await store.listApiKeys()).find((r) => r.digest === digest)?.id ?? given;
}


async function create(args: string[]): Promise<number> {
  const flags = parseCreate(args);
  if (typeof flags === 'string') {
    console.error(`${flags}\nusage: microflows keys create --kind admin|server|client --name <name> [--scope read,write,admin]`);
    return 1;
  }
  let made: { key: string; record: ApiKeyRecord };
  try {
    made = newApiKey(flags.kind, flags.name, flags.scopes, Date.now());
  } catch (err) {
    // core/api-keys names the field (kind, name, scopes); here it is the option to fix.
    const field = (err as { field?: unknown }).field;
    if (!isMicroflowsError(err) || typeof field !== 'string') throw err;
    console.error(`${FLAG_OF[field] ?? field}: ${err.message.slice(field.length + 2)}`);
    return 1;
  }
  await withStore((store) => store.createApiKey(made.record));
  const { key, record } = made;
  if (flags.json) {
    process.stdout.write(`${JSON.stringify({ key, record: listedApiKey(record) }, null, 2)}\n`);
    return 0;
  }
  const scopes = record.kind === 'admin' ? ` with scopes ${record.scopes.join(', ')}` : '';
  console.log(
    [
      `Created ${record.kind} key ${record.id} (${JSON.stringify(record.name)})${scopes}.`,
      '',
      `  ${key}`,
      '',
      'This is the only time the key is shown: microflows stores its SHA-256 digest only. Keep it in a secret store.',
      ...howToUse(record, key),
      `Revoke it with: microflows keys revoke ${record.id}`,
    ].join('\n'),
  );
  return 0;
}

async function list(args: string[]): Promise<number> {
  if (!(args.length === 0 || (args.length === 1 && args[0] === '--json'))) {
    console.error(`unexpected argument "${args.find((a) => a !== '--json') ?? args[1]}"\nusage: microflows keys list [--json]`);
    return 1;
  }
  const records = await withStore((store) => store.listApiKeys());
  if (args[0] === '--json') process.stdout.write(`${JSON.stringify(records.map(listedApiKey), null, 2)}\n`);
  else if (records.length === 0) console.log('no keys yet: microflows keys create --kind admin|server|client --name <name>');
  else console.log(keyTable(records));
  return 0;
}

async function revoke(args: string[]): Promise<number> {
  const [given, ...extra] = args;
  if (given === undefined || given === '' || extra.length > 0) {
    console.error(`${given === undefined || given === '' ? 'name the key to revoke by its id' : `unexpected argument "${extra[0]}": revoke one key at a time`}\nusage: microflows keys revoke <id>`);
    return 1;
  }
  const at = Date.now();
  let revoked: ApiKeyRecord | undefined;
  try {
    revoked = await withStore(async (store) => store.revokeApiKey(await keyToRevoke(store, given), at));
  } catch (err) {
    if (!isMicroflowsError(err) || err.status !== 400) throw err;
    console.error(err.message);
    return 1;
  }
  if (!revoked) {
    console.error(`no key "${given}": microflows keys list shows every key's id`);
    return 1;
  }
  const what = `${revoked.kind} key ${revoked.id} (${JSON.stringify(revoked.name)})`;
  console.log(revoked.revokedAt === at ? `Revoked ${what}; servers stop accepting it within seconds.` : `${what} was already revoked at ${when(revoked.revokedAt)}.`);
  return 0;
}

export async function runKeys(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === 'create') return create(rest);
  if (sub === 'list') return list(rest);
  if (sub === 'revoke') return revoke(rest);
  console.error(`${sub === undefined ? 'say what to do' : `unknown keys command "${sub}"`}: create, list or revoke\n${KEYS_USAGE}`);
  return 1;
}
