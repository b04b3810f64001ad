// Key kinds, scopes and the stored digest: a key says what it is, is stored only as its digest, and scopes nest.
import { KEY_PREFIX, keyDigest, newApiKey, normalizeScopes, scopeAllows } from '../../core/api-keys';

describe('newApiKey', () => {
  it('makes a random key with its kind as prefix, and a record that holds only its digest and a hint', () => {
    const { key, record } = newApiKey('admin', ' ops ', ['write', 'read'], 1_000);
    expect(key.startsWith(KEY_PREFIX.admin)).toBe(true);
    expect(key.length).toBeGreaterThanOrEqual(KEY_PREFIX.admin.length + 43);
    expect(record).toMatchObject({ kind: 'admin', name: 'ops', scopes: ['read', 'write'], digest: keyDigest(key), createdAt: 1_000, revokedAt: null });
    expect(JSON.stringify(record)).not.toContain(key.slice(KEY_PREFIX.admin.length + 4));
    expect(record.hint).toBe(`${key.slice(0, KEY_PREFIX.admin.length + 4)}…`);
    expect(newApiKey('admin', 'ops', ['read'], 1_000).key).not.toBe(key);
  });

  it('gives source keys no scopes, and refuses scopes on them', () => {
    expect(newApiKey('client', 'website', [], 0).record.scopes).toEqual([]);
    expect(newApiKey('server', 'backend', [], 0).key.startsWith('mf_server_')).toBe(true);
    expect(() => newApiKey('client', 'website', ['read'], 0)).toThrow('scopes: only admin keys have scopes');
  });

  it('refuses unknown kinds and scopes, no scope on an admin key, and bad names, saying which field', () => {
    expect(() => newApiKey('root' as never, 'x', [], 0)).toThrow('kind: unknown key kind "root"');
    expect(() => newApiKey('admin', 'x', [], 0)).toThrow('scopes: an admin key needs at least one scope');
    expect(() => normalizeScopes(['read', 'sudo'])).toThrow('scopes: unknown scope "sudo"');
    expect(() => newApiKey('server', '  ', [], 0)).toThrow('name: give the key a name');
    expect(() => newApiKey('server', 'x'.repeat(101), [], 0)).toThrow('name: give the key a name');
    expect(() => newApiKey('server', 'evil\nname', [], 0)).toThrow('name: the name holds a control character');
  });
});

describe('scopeAllows', () => {
  it('lets admin do everything, write read and write, read only read', () => {
    expect(['read', 'write', 'admin'].map((needed) => scopeAllows(['admin'], needed as never))).toEqual([true, true, true]);
    expect(['read', 'write', 'admin'].map((needed) => scopeAllows(['write'], needed as never))).toEqual([true, true, false]);
    expect(['read', 'write', 'admin'].map((needed) => scopeAllows(['read'], needed as never))).toEqual([true, false, false]);
  });
});
