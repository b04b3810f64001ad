// What a server reachable from the network must not run with: the development write key, links signed with a
// secret other servers do not share, or an admin API nobody can open. Pure: the caller says whether admin keys exist.
import { DEFAULT_WRITE_KEY, type Config } from './config';

/** Shorter keys and secrets than this are refused off loopback: they can be guessed. */
export const MIN_SECRET_LENGTH = 24;

export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  return bare === 'localhost' || bare === '::1' || /^127\.\d+\.\d+\.\d+$/.test(bare);
}

/**
 * Why a server binding these addresses is not safe to start, each with the one line that fixes it; empty when it is
 * (or when it listens on loopback only, where the development defaults are fine).
 */
export function insecureStartProblems(
  config: Pick<Config, 'host' | 'adminHost' | 'writeKey' | 'signingSecret' | 'adminKey'> & Partial<Pick<Config, 'payloadEncryption' | 'masterKey' | 'masterKeyFile'>>,
  env: Record<string, string | undefined>,
  hasStoredAdminKey: boolean,
): string[] {
  const exposed = [config.host, config.adminHost ?? config.host].filter((host) => !isLoopbackHost(host));
  if (exposed.length === 0) return [];
  const problems: string[] = [];
  if (!env.MICROFLOWS_WRITE_KEY || config.writeKey === DEFAULT_WRITE_KEY) {
    problems.push(`the write key is the development default "${DEFAULT_WRITE_KEY}": set MICROFLOWS_WRITE_KEY=$(openssl rand -hex 32) (a server key), and give browsers a client key from \`microflows keys create --kind client --name website\``);
  } else if (config.writeKey.length < MIN_SECRET_LENGTH) {
    problems.push(`MICROFLOWS_WRITE_KEY is ${config.writeKey.length} characters, too short to be a secret: set MICROFLOWS_WRITE_KEY=$(openssl rand -hex 32)`);
  }
  if (!config.signingSecret) {
    problems.push('MICROFLOWS_SIGNING_SECRET is unset (links would be signed with a secret other servers do not share): set MICROFLOWS_SIGNING_SECRET=$(openssl rand -hex 32), the same on every server and worker');
  } else if (config.signingSecret.length < MIN_SECRET_LENGTH) {
    problems.push(`MICROFLOWS_SIGNING_SECRET is ${config.signingSecret.length} characters, too short to be a secret: set MICROFLOWS_SIGNING_SECRET=$(openssl rand -hex 32)`);
  }
  if (config.adminKey && config.adminKey.length < MIN_SECRET_LENGTH) {
    problems.push(`MICROFLOWS_ADMIN_KEY is ${config.adminKey.length} characters, too short to be a secret: create one with \`microflows keys create --kind admin --name ops --scope admin\` (or set MICROFLOWS_ADMIN_KEY=$(openssl rand -hex 32))`);
  } else if (!config.adminKey && !hasStoredAdminKey) {
    problems.push('no admin key exists, so the admin API would open to no one: run `microflows keys create --kind admin --name ops --scope admin` (or set MICROFLOWS_ADMIN_KEY=$(openssl rand -hex 32))');
  }
  // Absent (a caller that predates payload encryption): not checked. A generated master key would differ per machine.
  if (config.payloadEncryption && !config.masterKey && !config.masterKeyFile) {
    problems.push('MICROFLOWS_MASTER_KEY is unset while Temporal payloads are encrypted: set MICROFLOWS_MASTER_KEY=$(openssl rand -base64 32) (or MICROFLOWS_MASTER_KEY_FILE), the same on every server and worker, or MICROFLOWS_PAYLOAD_ENCRYPTION=false');
  }
  return problems;
}

/** The refusal: where the server would listen, then one fix per line. */
export function insecureStartMessage(config: Pick<Config, 'host' | 'adminHost'>, problems: string[]): string {
  const where = `HOST=${config.host}${config.adminHost && config.adminHost !== config.host ? ` and MICROFLOWS_ADMIN_HOST=${config.adminHost}` : ''}`;
  return `refusing to start: ${where} reaches beyond this machine, and\n${problems.map((p) => `  - ${p}`).join('\n')}`;
}
