import { readConfig } from '../../core/config';
import { ConfigError } from '../../core/errors';

const DAY = 86_400_000;
const config = (env: Record<string, string>) => readConfig(env, '/srv/shop');

describe('MICROFLOWS_EVENT_RETENTION', () => {
  it('is a duration of at least a day, or none (the default) to keep events forever', () => {
    expect(config({}).eventRetentionMs).toBeNull();
    expect(config({ MICROFLOWS_EVENT_RETENTION: '' }).eventRetentionMs).toBeNull();
    expect(config({ MICROFLOWS_EVENT_RETENTION: 'none' }).eventRetentionMs).toBeNull();
    expect(config({ MICROFLOWS_EVENT_RETENTION: '400d' }).eventRetentionMs).toBe(400 * DAY);
    expect(config({ MICROFLOWS_EVENT_RETENTION: '1d' }).eventRetentionMs).toBe(DAY);
    expect(config({ MICROFLOWS_EVENT_RETENTION: '52w' }).eventRetentionMs).toBe(364 * DAY);
  });

  it('refuses a shorter or unreadable value, naming the variable and what to write', () => {
    for (const value of ['23h', '0d', '400', 'a year']) {
      expect(() => config({ MICROFLOWS_EVENT_RETENTION: value })).toThrow(ConfigError);
      expect(() => config({ MICROFLOWS_EVENT_RETENTION: value })).toThrow(`MICROFLOWS_EVENT_RETENTION=${value} must be a duration of at least 1d, e.g. 400d, or none to keep events forever`);
    }
  });
});

describe('MICROFLOWS_IP_TRUNCATION', () => {
  it('is on unless set to false', () => {
    expect(config({}).ipTruncation).toBe(true);
    expect(config({ MICROFLOWS_IP_TRUNCATION: 'true' }).ipTruncation).toBe(true);
    expect(config({ MICROFLOWS_IP_TRUNCATION: 'false' }).ipTruncation).toBe(false);
    expect(() => config({ MICROFLOWS_IP_TRUNCATION: 'maybe' })).toThrow('MICROFLOWS_IP_TRUNCATION=maybe: use true or false');
  });
});
