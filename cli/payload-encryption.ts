// Wires payload encryption for a process: the master keys from the environment (or a key file, or, for a development
// stack on loopback, one generated into the data directory), the keyring over the store, the codec and the data
// converter every Temporal client and worker of the process uses.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DataConverter } from '@temporalio/common';
import { EncryptingPayloadCodec, encryptingDataConverter } from '../client/payload-codec';
import { PayloadKeyring, type DataKeyStore, type MasterKeys } from '../client/payload-keys';
import type { Config } from '../core/config';
import { ConfigError } from '../core/errors';
import { parseMasterKey } from '../core/payload-crypto';
import { isLoopbackHost } from '../core/start-policy';

export interface PayloadEncryption {
  keyring: PayloadKeyring;
  codec: EncryptingPayloadCodec;
  dataConverter: DataConverter;
}

type MasterKeyConfig = Pick<Config, 'masterKey' | 'masterKeyFile' | 'previousMasterKeys' | 'payloadEncryption' | 'dataDir' | 'host' | 'adminHost' | 'temporalAddress'>;

/** The host of a `host:port` address (IPv6 in brackets). */
function hostOfAddress(address: string): string {
  const bracketed = /^\[([^\]]+)\]/.exec(address);
  if (bracketed) return bracketed[1]!;
  const colon = address.lastIndexOf(':');
  return colon > 0 && address.indexOf(':') === colon ? address.slice(0, colon) : address;
}

/**
 * Whether this process may keep a generated master key in its data directory: only when everything it talks to and
 * listens on is this machine (the embedded stack), where every process shares that directory. A deployment must give
 * every worker and server the same key, which a per-machine file cannot promise.
 */
export function mayGenerateMasterKey(config: Pick<Config, 'host' | 'adminHost' | 'temporalAddress'>): boolean {
  return isLoopbackHost(config.host) && isLoopbackHost(config.adminHost ?? config.host) && (config.temporalAddress === null || isLoopbackHost(hostOfAddress(config.temporalAddress)));
}

/** The development master key in the data directory: read, or (when `create`) generated on first start, mode 600. */
export function developmentMasterKeyText(dataDir: string, create: boolean): string | null {
  const file = join(dataDir, 'master-key');
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    if (!create) return null;
    mkdirSync(dataDir, { recursive: true });
    const key = randomBytes(32).toString('base64');
    // 'wx': if another process created it meanwhile, this throws and we read theirs.
    try {
      writeFileSync(file, `${key}\n`, { mode: 0o600, flag: 'wx' });
      return key;
    } catch {
      return readFileSync(file, 'utf8').trim();
    }
  }
}

/**
 * The master keys of this process, or null when there is none and encryption is off (reading stays possible for
 * plaintext payloads only). Without MICROFLOWS_MASTER_KEY or its file, a loopback-only process keeps one in the data
 * directory; anything else with encryption on is refused, naming the variable.
 */
export function masterKeysOf(config: MasterKeyConfig): { keys: MasterKeys | null; generated: string | null } {
  const previous = config.previousMasterKeys.map((text, i) => parseMasterKey(text, `MICROFLOWS_PREVIOUS_MASTER_KEYS (key ${i + 1})`));
  if (config.masterKey) return { keys: { current: parseMasterKey(config.masterKey, 'MICROFLOWS_MASTER_KEY'), previous }, generated: null };
  if (config.masterKeyFile) {
    let text: string;
    try {
      text = readFileSync(config.masterKeyFile, 'utf8');
    } catch (err) {
      throw new ConfigError(`MICROFLOWS_MASTER_KEY_FILE=${config.masterKeyFile} cannot be read (${(err as Error).message}): point it at a file holding the master key`);
    }
    return { keys: { current: parseMasterKey(text, `MICROFLOWS_MASTER_KEY_FILE (${config.masterKeyFile})`), previous }, generated: null };
  }
  if (mayGenerateMasterKey(config)) {
    const text = developmentMasterKeyText(config.dataDir, config.payloadEncryption);
    if (text) return { keys: { current: parseMasterKey(text, `the development master key (${join(config.dataDir, 'master-key')})`), previous }, generated: join(config.dataDir, 'master-key') };
  }
  if (!config.payloadEncryption) return { keys: null, generated: null };
  throw new ConfigError(
    'MICROFLOWS_MASTER_KEY is unset, and payload encryption (or MICROFLOWS_PSEUDONYMOUS_IDS) needs it: set MICROFLOWS_MASTER_KEY=$(openssl rand -base64 32) (or ' +
      'MICROFLOWS_MASTER_KEY_FILE), the same on every worker and server; keep it out of the database backups. ' +
      '(Only a stack entirely on loopback generates one, into MICROFLOWS_DATA_DIR/master-key.)',
  );
}

/** The encryption of this process's Temporal payloads, over the store's data keys. */
export function openPayloadEncryption(config: MasterKeyConfig & Pick<Config, 'pseudonymousIds'>, store: DataKeyStore): PayloadEncryption & { generatedMasterKeyFile: string | null } {
  // Subjects are keyed hashes whose salt the master key wraps: pseudonymous ids need one even with encryption off.
  const { keys, generated } = masterKeysOf({ ...config, payloadEncryption: config.payloadEncryption || config.pseudonymousIds });
  const keyring = new PayloadKeyring(store, keys, { pseudonymousIds: config.pseudonymousIds });
  const codec = new EncryptingPayloadCodec(keyring, { encrypt: config.payloadEncryption });
  return { keyring, codec, dataConverter: encryptingDataConverter(codec), generatedMasterKeyFile: generated };
}
