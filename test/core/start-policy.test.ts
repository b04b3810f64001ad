// The start checks on examples: loopback runs with the development defaults; a server reachable from the network
// is refused the default write key, a missing signing secret and an admin API with no key, each with its fix.
import { DEFAULT_WRITE_KEY } from '../../core/config';
import { insecureStartMessage, insecureStartProblems, isLoopbackHost } from '../../core/start-policy';

const SECRET = 'a'.repeat(64);
const safe = { host: '0.0.0.0', adminHost: null, writeKey: SECRET, signingSecret: SECRET, adminKey: SECRET };
const env = { MICROFLOWS_WRITE_KEY: SECRET };

describe('insecureStartProblems', () => {
  it('lets loopback run with every development default', () => {
    for (const host of ['127.0.0.1', 'localhost', '::1', '[::1]', '127.1.2.3']) {
      expect(isLoopbackHost(host)).toBe(true);
      expect(insecureStartProblems({ host, adminHost: null, writeKey: DEFAULT_WRITE_KEY, signingSecret: null, adminKey: null }, {}, false)).toEqual([]);
    }
  });

  it('lets a network server with its own secrets and an admin key run', () => {
    expect(insecureStartProblems(safe, env, false)).toEqual([]);
    expect(insecureStartProblems({ ...safe, adminKey: null }, env, true)).toEqual([]);
  });

  it('refuses every development default on 0.0.0.0, one fix per problem', () => {
    const problems = insecureStartProblems({ host: '0.0.0.0', adminHost: null, writeKey: DEFAULT_WRITE_KEY, signingSecret: null, adminKey: null }, {}, false);
    expect(problems).toHaveLength(3);
    expect(problems[0]).toContain('set MICROFLOWS_WRITE_KEY=$(openssl rand -hex 32)');
    expect(problems[1]).toContain('set MICROFLOWS_SIGNING_SECRET=$(openssl rand -hex 32)');
    expect(problems[2]).toContain('microflows keys create --kind admin');
    const message = insecureStartMessage({ host: '0.0.0.0', adminHost: null }, problems);
    expect(message.split('\n')).toEqual(['refusing to start: HOST=0.0.0.0 reaches beyond this machine, and', ...problems.map((p) => `  - ${p}`)]);
  });

  it('refuses the default write key even when set explicitly, and secrets too short to be secret', () => {
    expect(insecureStartProblems({ ...safe, writeKey: DEFAULT_WRITE_KEY }, { MICROFLOWS_WRITE_KEY: DEFAULT_WRITE_KEY }, false)[0]).toContain('development default');
    const short = insecureStartProblems({ ...safe, writeKey: 'short', signingSecret: 'short', adminKey: 'short' }, { MICROFLOWS_WRITE_KEY: 'short' }, false);
    expect(short).toHaveLength(3);
    for (const problem of short) expect(problem).toContain('too short to be a secret');
  });

  it('checks an admin port bound beyond loopback even when HOST is loopback', () => {
    const problems = insecureStartProblems({ host: '127.0.0.1', adminHost: '10.0.0.5', writeKey: DEFAULT_WRITE_KEY, signingSecret: null, adminKey: null }, {}, false);
    expect(problems).toHaveLength(3);
    expect(insecureStartMessage({ host: '127.0.0.1', adminHost: '10.0.0.5' }, problems)).toContain('HOST=127.0.0.1 and MICROFLOWS_ADMIN_HOST=10.0.0.5');
  });
});
