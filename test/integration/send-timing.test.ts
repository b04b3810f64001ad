// When a marketing email goes (issue 15) on the real path: events in through HTTP, the flows of
// test/fixtures/timing-flows with its policy.yaml (quiet hours 21:00-08:00), the shipped templates, emails out over a
// real SMTP socket on the time-skipping server. Quiet hours hold a send due late at night until 08:00 on the
// customer's own wall clock, across both DST changes; best send time picks the customer's own hour, or the
// population's when they have no history. Local times are read back with Intl, not with the luxon the code uses.
import path from 'node:path';
import { DateTime } from 'luxon';
import type { DecisionRecord, SendRecord } from '../../store/store';
import { post, waitUntil } from '../support/http';
import { PROJECT_ROOT, stackDatabases, startTimeSkippingStack, WRITE_KEY, type TimeSkippingStack } from '../support/stack';
import { describeOn } from '../support/store-backends';
import type { ReceivedMail } from '../support/smtp-sink';

const FLOWS_DIR = path.join(PROJECT_ROOT, 'test', 'fixtures', 'timing-flows');
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const NEW_YORK = 'America/New_York';

/** "YYYY-MM-DD HH:mm" on the wall clock of `timeZone`. */
function wallClock(at: number | Date, timeZone: string): string {
  const parts = new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).formatToParts(at);
  const part = (type: Intl.DateTimeFormatPartTypes) => parts.find((p) => p.type === type)!.value;
  return `${part('year')}-${part('month')}-${part('day')} ${part('hour')}:${part('minute')}`;
}

/** The first moment after `after` at hour:minute on the wall clock of `timeZone`. */
function nextLocal(after: number, timeZone: string, hour: number, minute = 0): number {
  const today = DateTime.fromMillis(after, { zone: timeZone }).set({ hour, minute, second: 0, millisecond: 0 });
  return (today.toMillis() > after ? today : today.plus({ days: 1 })).toMillis();
}

for (const database of stackDatabases('send timing')) {
  describeOn(database, `on ${database}`, () => {
    let stack: TimeSkippingStack;

    beforeAll(async () => {
      stack = await startTimeSkippingStack({ MICROFLOWS_FLOWS_DIR: FLOWS_DIR }, database);
    }, 120_000);

    afterAll(async () => {
      await stack?.stop();
    });

    async function identify(userId: string, traits: Record<string, unknown> = {}): Promise<void> {
      const res = await post(`${stack.url}/v1/identify`, {
        userId,
        traits: { email: `${userId}@example.com`, first_name: 'Ana', consent: { email_marketing: true }, ...traits },
      }, WRITE_KEY);
      expect(res.status).toBe(200);
    }

    async function track(userId: string, event: string, extra: Record<string, unknown> = {}): Promise<void> {
      const res = await post(`${stack.url}/v1/track`, { userId, event, ...extra }, WRITE_KEY);
      expect(res.status).toBe(200);
      await stack.runtime.dispatcher.idle();
    }

    /** Skips the test server's clock (flow time) forward to `at`. */
    async function sleepUntil(at: number): Promise<void> {
      const now = await stack.env.currentTimeMs();
      if (at <= now) throw new Error(`cannot sleep back to ${new Date(at).toISOString()}: the flow clock is at ${new Date(now).toISOString()}`);
      await stack.env.sleep(at - now);
    }

    function mailsTo(userId: string): ReceivedMail[] {
      return stack.smtp.messages.filter((m) => m.to.includes(`${userId}@example.com`));
    }

    async function sentTo(userId: string): Promise<{ send: SendRecord; mail: ReceivedMail }> {
      const mail = await waitUntil(`an email to ${userId}`, async () => mailsTo(userId)[0]);
      const send = await waitUntil(`the send to ${userId} recorded as sent`, async () => (await stack.runtime.store.listSends({ customerId: userId })).find((s) => s.status === 'sent'));
      expect(mailsTo(userId)).toHaveLength(1);
      return { send, mail };
    }

    async function decisionOf(userId: string, outcome: string): Promise<DecisionRecord> {
      return waitUntil(`a decision "${outcome}" for ${userId}`, async () => (await stack.runtime.store.decisionsOf(userId)).find((d) => d.outcome === outcome));
    }

    // First in the file: the population prior is read once per worker hour and flow day, so it must be seeded before
    // the first best-time send asks for it.
    describe('best send time', () => {
      const OWN_HOUR_ZONE = 'America/Chicago';
      const NEW_ZONE = 'Europe/Lisbon';

      /** `count` 'Email Opened' events of `userId`, one a day going back from yesterday, at `hour`:xx in `timeZone`. */
      function opens(userId: string, timeZone: string, hour: number, count: number, properties: Record<string, unknown> = {}, name = 'Email Opened') {
        const now = Date.now();
        return Array.from({ length: count }, (_, i) => ({
          type: 'track',
          userId,
          event: name,
          properties,
          messageId: `${userId}-${name}-${hour}-${i}`,
          timestamp: DateTime.fromMillis(now, { zone: timeZone })
            .minus({ days: i + 1 })
            .set({ hour, minute: (i * 7 + 3) % 60, second: 0, millisecond: 0 })
            .toISO(),
        }));
      }

      beforeAll(async () => {
        // The population: four customers who read at 14:xx on their own wall clocks, in zones hours apart; one of them
        // known only by the context.timezone of their events. Engagement history comes in as a server integration
        // would backfill it: /v1/batch with a server key (a client key may not send `Email …` events).
        const population: Array<{ userId: string; zone: string; viaContext?: boolean }> = [
          { userId: 'bt-pop-berlin', zone: 'Europe/Berlin' },
          { userId: 'bt-pop-tokyo', zone: 'Asia/Tokyo' },
          { userId: 'bt-pop-la', zone: 'America/Los_Angeles' },
          { userId: 'bt-pop-kolkata', zone: 'Asia/Kolkata', viaContext: true },
        ];
        const batch: unknown[] = [];
        for (const { userId, zone, viaContext } of population) {
          await identify(userId, viaContext ? {} : { timezone: zone });
          const context = viaContext ? { context: { timezone: zone } } : {};
          batch.push(...opens(userId, zone, 14, 5).map((e) => ({ ...e, ...context })));
          batch.push(...opens(userId, zone, 14, 2, { url: 'https://shop.example/new' }, 'Email Link Clicked').map((e) => ({ ...e, ...context })));
        }
        // The customer with a habit: human opens at 19:xx local, a few at 09:xx, and more machine opens (the ESP's
        // prefetch, flagged machine_open) at 11:xx, which must not count.
        await identify('bt-evening', { timezone: OWN_HOUR_ZONE });
        batch.push(...opens('bt-evening', OWN_HOUR_ZONE, 19, 12), ...opens('bt-evening', OWN_HOUR_ZONE, 9, 2));
        batch.push(...opens('bt-evening', OWN_HOUR_ZONE, 11, 20, { machine_open: true }));
        const res = await post(`${stack.url}/v1/batch`, { batch }, WRITE_KEY);
        expect(res.status).toBe(200);
        await stack.runtime.dispatcher.idle();
        expect(await stack.runtime.store.eventsOf('bt-evening', { names: ['Email Opened'] })).toHaveLength(34);
        expect(await stack.runtime.store.eventsOf('bt-pop-kolkata', { names: ['Email Opened', 'Email Link Clicked'] })).toHaveLength(7);
      });

      /** Triggers the best-time flow at 10:00 local; returns the decision, and checks nothing went out before `hour`. */
      async function bestTimeSend(userId: string, timeZone: string, hour: number): Promise<{ decision: DecisionRecord; send: SendRecord; mail: ReceivedMail; plannedAt: number }> {
        const due = nextLocal(await stack.env.currentTimeMs(), timeZone, 10);
        await sleepUntil(due);
        await track(userId, 'Best Time Note Requested');
        const decision = await decisionOf(userId, 'scheduled');
        const plannedAt = Date.parse(/ scheduled for (\S+): /.exec(decision.reason)?.[1] ?? '');
        expect(wallClock(plannedAt, timeZone)).toBe(`${wallClock(due, timeZone).slice(0, 10)} ${String(hour).padStart(2, '0')}:00`);
        // Held until then: a minute before, nothing has gone out.
        await sleepUntil(plannedAt - MINUTE);
        expect(mailsTo(userId)).toHaveLength(0);
        expect(await stack.runtime.store.listSends({ customerId: userId })).toHaveLength(0);
        await stack.env.sleep(2 * MINUTE);
        const { send, mail } = await sentTo(userId);
        expect(send.scheduledAt).toBeGreaterThanOrEqual(plannedAt);
        expect(send.scheduledAt).toBeLessThan(plannedAt + MINUTE);
        expect(wallClock(send.scheduledAt, timeZone)).toBe(wallClock(plannedAt, timeZone));
        expect(wallClock(mail.date, timeZone)).toBe(wallClock(plannedAt, timeZone));
        return { decision, send, mail, plannedAt };
      }

      it('a customer whose opens cluster at 19:00 local gets the send at 19:00 on their wall clock, and the log says why', async () => {
        const { decision, send } = await bestTimeSend('bt-evening', OWN_HOUR_ZONE, 19);
        expect(decision.key).toBe(`${send.deliveryKey}:best-time`);
        expect(decision.flowId).toBe('best-time-note');
        expect(decision.reason).toContain(`best time in ${OWN_HOUR_ZONE} (from the profile)`);
        expect(decision.reason).toContain(`19:00 local (${OWN_HOUR_ZONE})`);
        expect(decision.reason).toMatch(/ of \d+(\.\d)? weighted opens\/clicks in the last 90 days at 19h/);
        expect(decision.reason).toMatch(/the customer's best hour, (9 h|8 h \d+ min) after the send was due/);
      });

      it('a customer with no history gets the population\'s hour, 14:00 on their own wall clock', async () => {
        await identify('bt-newcomer', { timezone: NEW_ZONE });
        const { decision, send } = await bestTimeSend('bt-newcomer', NEW_ZONE, 14);
        expect(decision.key).toBe(`${send.deliveryKey}:best-time`);
        expect(decision.reason).toContain(`14:00 local (${NEW_ZONE}): no opens or clicks by this customer in the last 90 days; the population's hour`);
        expect(decision.reason).toContain("population's hour 14h");
      });
    });

    describe('quiet hours 21:00-08:00 (policy.yaml)', () => {
      /**
       * A customer in New York (profile trait) whose late-note flow starts at `noon` and reaches its send at 23:30 local
       * (`dueAt`): held, logged, and sent at `goesAt`.
       */
      async function heldOvernight(userId: string, noon: number, dueAt: number, goesAt: number): Promise<{ deferral: DecisionRecord; send: SendRecord; mail: ReceivedMail }> {
        await sleepUntil(noon);
        await identify(userId, { timezone: NEW_YORK });
        await track(userId, 'Late Note Requested');
        await sleepUntil(dueAt + MINUTE);
        const deferral = await decisionOf(userId, 'deferred');
        expect(deferral.at).toBeGreaterThanOrEqual(dueAt);
        expect(deferral.at).toBeLessThan(dueAt + MINUTE);
        expect(deferral.flowId).toBe('late-note');
        expect(mailsTo(userId)).toHaveLength(0);

        await sleepUntil(goesAt - MINUTE);
        expect(mailsTo(userId)).toHaveLength(0);
        await stack.env.sleep(2 * MINUTE);
        const { send, mail } = await sentTo(userId);
        expect(deferral.key).toBe(`${send.deliveryKey}:quiet:1`);
        expect(send.scheduledAt).toBeGreaterThanOrEqual(goesAt);
        expect(send.scheduledAt).toBeLessThan(goesAt + MINUTE);
        expect(mail.subject).toBe('We miss you, Ana');
        expect(wallClock(mail.date, NEW_YORK)).toBe(wallClock(send.scheduledAt, NEW_YORK));
        // Deferred once, not again when it asked at 08:00.
        expect((await stack.runtime.store.decisionsOf(userId)).filter((d) => d.outcome === 'deferred')).toHaveLength(1);
        return { deferral, send, mail };
      }

      it('a send due at 23:30 in America/New_York goes at 08:00 local', async () => {
        const noon = nextLocal(await stack.env.currentTimeMs(), NEW_YORK, 12);
        const dueAt = nextLocal(noon, NEW_YORK, 23, 30);
        const goesAt = nextLocal(dueAt, NEW_YORK, 8);
        const { deferral, send } = await heldOvernight('qh-plain', noon, dueAt, goesAt);
        expect(wallClock(deferral.at, NEW_YORK).slice(11)).toBe('23:30');
        expect(wallClock(send.scheduledAt, NEW_YORK).slice(11)).toBe('08:00');
        expect(deferral.reason).toContain(`quiet hours 21:00-08:00 in ${NEW_YORK} (from the profile); goes at ${DateTime.fromMillis(goesAt, { zone: NEW_YORK }).toISO()}`);
      });

      it('the zone of the customer\'s latest event (context.timezone) holds the send when the profile has none', async () => {
        // An older event from Berlin, then the trigger from Tokyo: the latest one's zone counts, before the flow's own
        // (New York) and the policy's (UTC). 23:30 in Tokyo is daytime in all three of those.
        const tokyo = 'Asia/Tokyo';
        await identify('qh-traveller');
        await track('qh-traveller', 'Page Viewed', { context: { timezone: 'Europe/Berlin' } });
        const dueAt = nextLocal(await stack.env.currentTimeMs(), tokyo, 23, 30);
        await sleepUntil(dueAt);
        await track('qh-traveller', 'Prompt Note Requested', { context: { timezone: tokyo } });
        const deferral = await decisionOf('qh-traveller', 'deferred');
        expect(deferral.reason).toContain(`quiet hours 21:00-08:00 in ${tokyo} (from the customer's latest events); goes at `);
        expect(mailsTo('qh-traveller')).toHaveLength(0);

        const goesAt = nextLocal(dueAt, tokyo, 8);
        await sleepUntil(goesAt - MINUTE);
        expect(mailsTo('qh-traveller')).toHaveLength(0);
        await stack.env.sleep(2 * MINUTE);
        const { send, mail } = await sentTo('qh-traveller');
        expect(wallClock(send.scheduledAt, tokyo)).toBe(wallClock(goesAt, tokyo));
        expect(wallClock(send.scheduledAt, tokyo).slice(11)).toBe('08:00');
        expect(wallClock(mail.date, tokyo).slice(11)).toBe('08:00');
      });

      it('a transactional email due at 23:30 goes at 23:30: quiet hours do not hold a receipt', async () => {
        const noon = nextLocal(await stack.env.currentTimeMs(), NEW_YORK, 12);
        const dueAt = nextLocal(noon, NEW_YORK, 23, 30);
        await sleepUntil(noon);
        await identify('qh-receipt', { timezone: NEW_YORK });
        await track('qh-receipt', 'Late Receipt Requested', { properties: { order_id: 'r-1', total: 20 } });
        await sleepUntil(dueAt + MINUTE);
        const { send, mail } = await sentTo('qh-receipt');
        expect(mail.subject).toBe('Thank you for your order r-1');
        expect(wallClock(send.scheduledAt, NEW_YORK)).toBe(wallClock(dueAt, NEW_YORK));
        expect(wallClock(mail.date, NEW_YORK).slice(11)).toBe('23:30');
        expect((await stack.runtime.store.decisionsOf('qh-receipt')).filter((d) => d.outcome === 'deferred' || d.outcome === 'scheduled')).toEqual([]);
      });

      // New York springs forward on 2027-03-14 (02:00 EST → 03:00 EDT) and falls back on 2027-11-07 (02:00 EDT →
      // 01:00 EST): the nights below are 7.5 h and 9.5 h long, and the send still goes at 08:00 on the wall clock.
      it('across the March DST change: due 2027-03-13 23:30 EST, goes 2027-03-14 08:00 EDT', async () => {
        const { deferral, send, mail } = await heldOvernight('qh-march', Date.UTC(2027, 2, 13, 17), Date.UTC(2027, 2, 14, 4, 30), Date.UTC(2027, 2, 14, 12));
        expect(wallClock(deferral.at, NEW_YORK)).toBe('2027-03-13 23:30');
        expect(wallClock(send.scheduledAt, NEW_YORK)).toBe('2027-03-14 08:00');
        expect(wallClock(mail.date, NEW_YORK)).toBe('2027-03-14 08:00');
        expect(deferral.reason).toContain(`quiet hours 21:00-08:00 in ${NEW_YORK} (from the profile); goes at 2027-03-14T08:00:00.000-04:00`);
        expect(send.scheduledAt - deferral.at).toBeLessThan(7.5 * HOUR + MINUTE);
      });

      it('across the November DST change: due 2027-11-06 23:30 EDT, goes 2027-11-07 08:00 EST', async () => {
        const { deferral, send, mail } = await heldOvernight('qh-november', Date.UTC(2027, 10, 6, 16), Date.UTC(2027, 10, 7, 3, 30), Date.UTC(2027, 10, 7, 13));
        expect(wallClock(deferral.at, NEW_YORK)).toBe('2027-11-06 23:30');
        expect(wallClock(send.scheduledAt, NEW_YORK)).toBe('2027-11-07 08:00');
        expect(wallClock(mail.date, NEW_YORK)).toBe('2027-11-07 08:00');
        expect(deferral.reason).toContain(`quiet hours 21:00-08:00 in ${NEW_YORK} (from the profile); goes at 2027-11-07T08:00:00.000-05:00`);
        expect(send.scheduledAt - deferral.at).toBeGreaterThan(9.5 * HOUR - MINUTE);
        expect(send.scheduledAt - deferral.at).toBeLessThan(DAY);
      });
    });
  });
}
