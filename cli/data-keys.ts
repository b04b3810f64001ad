// `microflows data-keys rewrap|status`: the payload data keys after a master key rotation. With the new key in
// MICROFLOWS_MASTER_KEY and the old one in MICROFLOWS_PREVIOUS_MASTER_KEYS, `rewrap` wraps every data key with the new
// one; then the old one can go. `status` counts the keys per master key id (never showing a key or a subject).
import { readConfig } from '../core/config';
import { isMicroflowsError } from '../core/errors';
import { openStore } from '../store/open-store';
import { openPayloadEncryption } from './payload-encryption';

export const DATA_KEYS_ARGS = 'rewrap | status [--json]';

export const DATA_KEYS_USAGE = `usage: microflows data-keys rewrap
       microflows data-keys status [--json]

  rewrap   wraps every payload data key with the master key of MICROFLOWS_MASTER_KEY (or MICROFLOWS_MASTER_KEY_FILE),
           unwrapping those wrapped by an older one with the keys of MICROFLOWS_PREVIOUS_MASTER_KEYS; safe to run again
  status   how many data keys each master key (by id) wraps, and which id the current master key has
Rotating the master key: (1) set MICROFLOWS_MASTER_KEY to the new key and MICROFLOWS_PREVIOUS_MASTER_KEYS to the old one
on every worker and server, and restart them; (2) run \`microflows data-keys rewrap\`; (3) \`microflows data-keys status\`
shows only the new id: remove the old key from MICROFLOWS_PREVIOUS_MASTER_KEYS and restart.
Reads the store (DATABASE_URL, or the SQLite file).`;

export async function runDataKeys(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'rewrap' && sub !== 'status') {
    console.error(`${sub === undefined ? 'say what to do' : `unknown data-keys command "${sub}"`}: rewrap or status\n${DATA_KEYS_USAGE}`);
    return 2;
  }
  const json = rest.includes('--json');
  const unknown = rest.find((arg) => arg !== '--json');
  if (unknown !== undefined) {
    console.error(`unknown option ${unknown}\n${DATA_KEYS_USAGE}`);
    return 2;
  }
  try {
    const config = readConfig(process.env, process.cwd());
    const store = openStore(config);
    try {
      await store.migrate();
      // Rewrapping needs the master key whatever MICROFLOWS_PAYLOAD_ENCRYPTION says.
      const { keyring } = openPayloadEncryption({ ...config, payloadEncryption: true }, store);
      if (sub === 'rewrap') {
        const { rewrapped, current } = await keyring.rewrapAll();
        if (json) console.log(JSON.stringify({ rewrapped, current, masterKeyId: keyring.masterKeyId }));
        else console.log(`rewrapped ${rewrapped} data key(s) with master key ${keyring.masterKeyId}; ${current} already were`);
        return 0;
      }
      const counts: Record<string, number> = {};
      for (const record of await store.listDataKeys()) counts[record.masterKeyId] = (counts[record.masterKeyId] ?? 0) + 1;
      if (json) console.log(JSON.stringify({ masterKeyId: keyring.masterKeyId, dataKeys: counts }));
      else {
        console.log(`current master key: ${keyring.masterKeyId}`);
        for (const [id, count] of Object.entries(counts)) console.log(`  ${id}: ${count} data key(s)${id === keyring.masterKeyId ? ' (current)' : ' (rewrap them)'}`);
      }
      return 0;
    } finally {
      await store.close();
    }
  } catch (err) {
    if (isMicroflowsError(err)) {
      console.error(err.message);
      return 1;
    }
    throw err;
  }
}
