// The master key as an operator handles it: `microflows data-keys rewrap|status` (the real CLI in a child process,
// on a SQLite store in a temporary MICROFLOWS_DATA_DIR) after a rotation, and the master key settings of a process —
// a development key generated once (mode 600) on loopback only, a key file, and refusals naming the variable to set.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Payload } from '@temporalio/common';
import { defaultPayloadConverter } from '@temporalio/common';
import { EncryptingPayloadCodec } from '../../client/payload-codec';
import { PayloadKeyring } from '../../client/payload-keys';
import { masterKeysOf } from '../../cli/payload-encryption';
import { customerWorkflowId } from '../../core/arbiter-state';
import { readConfig } from '../../core/config';
import { ConfigError } from '../../core/errors';
import { insecureStartProblems } from '../../core/start-policy';
import { parseMasterKey } from '../../core/payload-crypto';
import type { KyselyStore } from '../../store/kysely-store';
import { openSqliteStore } from '../../store/sqlite';
import { runCli } from '../support/cli-run';

const keyText = () => randomBytes(32).toString('base64');
let dataDir: string;
let store: KyselyStore;

beforeAll(async () => {
  dataDir = mkdtempSync(path.join(tmpdir(), 'microflows-data-keys-'));
  store = openSqliteStore(path.join(dataDir, 'microflows.sqlite'));
  await store.migrate();
});

afterAll(async () => {
  await store?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

async function sealFor(master: string, customers: string[]): Promise<Payload[]> {
  const codec = new EncryptingPayloadCodec(new PayloadKeyring(store, { current: parseMasterKey(master, 'MICROFLOWS_MASTER_KEY'), previous: [] }, { pseudonymousIds: false }), { encrypt: true });
  const sealed: Payload[] = [];
  for (const customer of customers) sealed.push(...(await codec.encode([defaultPayloadConverter.toPayload({ customer })], { type: 'workflow', namespace: 'default', workflowId: customerWorkflowId(customer) })));
  return sealed;
}

async function openWith(master: string, sealed: Payload[]): Promise<unknown[]> {
  const codec = new EncryptingPayloadCodec(new PayloadKeyring(store, { current: parseMasterKey(master, 'MICROFLOWS_MASTER_KEY'), previous: [] }, { pseudonymousIds: false }), { encrypt: true });
  return (await codec.decode(sealed)).map((p) => defaultPayloadConverter.fromPayload(p));
}

test('rotation with the CLI: rewrap under B with A as previous, then B alone reads everything; without A first, it says what to set', async () => {
  const [a, b] = [keyText(), keyText()];
  const sealed = await sealFor(a, ['c-1', 'c-2']);
  const env = { MICROFLOWS_DATA_DIR: dataDir, MICROFLOWS_MASTER_KEY: b };

  const missingPrevious = await runCli(['data-keys', 'rewrap'], env);
  expect(missingPrevious.status).toBe(1);
  expect(missingPrevious.stderr).toContain('MICROFLOWS_PREVIOUS_MASTER_KEYS');
  expect(missingPrevious.stderr).toContain(parseMasterKey(a, 'x').id);

  const status = await runCli(['data-keys', 'status', '--json'], { ...env, MICROFLOWS_PREVIOUS_MASTER_KEYS: a });
  expect(status.status).toBe(0);
  // c-1, c-2 and the subject salt, all under A.
  expect(JSON.parse(status.stdout)).toEqual({ masterKeyId: parseMasterKey(b, 'x').id, dataKeys: { [parseMasterKey(a, 'x').id]: 3 } });

  const rewrap = await runCli(['data-keys', 'rewrap'], { ...env, MICROFLOWS_PREVIOUS_MASTER_KEYS: a });
  expect(rewrap.stderr).toBe('');
  expect(rewrap.status).toBe(0);
  expect(rewrap.stdout).toContain('rewrapped 3 data key(s)');
  const again = await runCli(['data-keys', 'rewrap', '--json'], env);
  expect(JSON.parse(again.stdout)).toEqual({ rewrapped: 0, current: 3, masterKeyId: parseMasterKey(b, 'x').id });

  expect(await openWith(b, sealed)).toEqual([{ customer: 'c-1' }, { customer: 'c-2' }]);
  await expect(openWith(a, sealed)).rejects.toThrow(/MICROFLOWS_PREVIOUS_MASTER_KEYS/);

  const wrong = await runCli(['data-keys', 'status'], { MICROFLOWS_DATA_DIR: dataDir, MICROFLOWS_MASTER_KEY: 'not-a-key' });
  expect(wrong.status).toBe(1);
  expect(wrong.stderr).toContain('MICROFLOWS_MASTER_KEY is not a master key');
  expect((await runCli(['data-keys', 'spin'], env)).status).toBe(2);
});

describe('master key settings', () => {
  const base = (env: Record<string, string>) => readConfig({ MICROFLOWS_DATA_DIR: path.join(dataDir, `dev-${Math.random().toString(36).slice(2)}`), ...env }, dataDir);

  it('on loopback without a key, generates one into the data directory once (mode 600) and keeps using it', () => {
    const config = base({});
    const first = masterKeysOf(config);
    const file = path.join(config.dataDir, 'master-key');
    expect(first.generated).toBe(file);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(masterKeysOf(config).keys!.current.id).toBe(first.keys!.current.id);
    expect(parseMasterKey(readFileSync(file, 'utf8'), 'x').id).toBe(first.keys!.current.id);
  });

  it('off loopback (a server, or a Temporal elsewhere) without a key refuses, naming MICROFLOWS_MASTER_KEY; with encryption off it runs keyless', () => {
    const exposures: Array<Record<string, string>> = [{ HOST: '0.0.0.0' }, { TEMPORAL_ADDRESS: 'temporal.internal:7233' }, { MICROFLOWS_ADMIN_HOST: '10.0.0.5' }];
    for (const env of exposures) {
      const config = base(env);
      expect(() => masterKeysOf(config)).toThrow(ConfigError);
      expect(() => masterKeysOf(config)).toThrow(/MICROFLOWS_MASTER_KEY=\$\(openssl rand -base64 32\)/);
      expect(masterKeysOf(base({ ...env, MICROFLOWS_PAYLOAD_ENCRYPTION: 'false' })).keys).toBeNull();
    }
    const exposed = base({ HOST: '0.0.0.0', MICROFLOWS_WRITE_KEY: 'w'.repeat(40), MICROFLOWS_SIGNING_SECRET: 's'.repeat(40), MICROFLOWS_ADMIN_KEY: 'a'.repeat(40) });
    expect(insecureStartProblems(exposed, { MICROFLOWS_WRITE_KEY: 'w'.repeat(40) }, false)).toEqual([expect.stringContaining('MICROFLOWS_MASTER_KEY is unset')]);
    expect(insecureStartProblems({ ...exposed, masterKey: keyText() }, { MICROFLOWS_WRITE_KEY: 'w'.repeat(40) }, false)).toEqual([]);
    expect(insecureStartProblems({ ...exposed, payloadEncryption: false }, { MICROFLOWS_WRITE_KEY: 'w'.repeat(40) }, false)).toEqual([]);
  });

  it('reads a key file and previous keys; refuses both settings at once, a bad key and an unreadable file, naming each', () => {
    const text = keyText();
    const file = path.join(dataDir, 'mounted-master-key');
    writeFileSync(file, `${text}\n`);
    const previous = keyText();
    const keys = masterKeysOf(base({ HOST: '0.0.0.0', MICROFLOWS_MASTER_KEY_FILE: file, MICROFLOWS_PREVIOUS_MASTER_KEYS: ` ${previous} ,` })).keys!;
    expect(keys.current.id).toBe(parseMasterKey(text, 'x').id);
    expect(keys.previous.map((k) => k.id)).toEqual([parseMasterKey(previous, 'x').id]);
    expect(() => base({ MICROFLOWS_MASTER_KEY: text, MICROFLOWS_MASTER_KEY_FILE: file })).toThrow(/both set/);
    expect(() => base({ MICROFLOWS_MASTER_KEY: 'abc' })).toThrow(/MICROFLOWS_MASTER_KEY is not a master key/);
    expect(() => base({ MICROFLOWS_PREVIOUS_MASTER_KEYS: `${previous},abc` })).toThrow(/MICROFLOWS_PREVIOUS_MASTER_KEYS \(key 2\)/);
    expect(() => masterKeysOf(base({ MICROFLOWS_MASTER_KEY_FILE: path.join(dataDir, 'absent') }))).toThrow(/MICROFLOWS_MASTER_KEY_FILE=.*cannot be read/);
  });
});
