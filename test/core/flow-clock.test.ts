// A run's schedule counts from its trigger event's time: a run that started late catches up on waits whose time has
// passed, keeps the places of later ones, and keeps the spacing after each email.
import { FlowClock, LATE_START_LIMIT_MS, scheduleStartOf } from '../../core/flow-clock';
import { msUntilTimeOfDay } from '../../core/time-of-day';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const T = Date.UTC(2026, 2, 10, 23, 50);

describe('scheduleStartOf', () => {
  it('moves the start back by how late the event reached Temporal', () => {
    expect(scheduleStartOf(T, { ageAtDispatchMs: 90 * SECOND })).toBe(T - 90 * SECOND);
  });

  it('starts at admission without timing (the sweep), or with an age that is no lateness', () => {
    expect(scheduleStartOf(T, {})).toBe(T);
    for (const age of [0, -5 * SECOND, Number.NaN, Number.POSITIVE_INFINITY]) expect(scheduleStartOf(T, { ageAtDispatchMs: age })).toBe(T);
  });

  it('goes back at most the 24 h history horizon', () => {
    expect(LATE_START_LIMIT_MS).toBe(24 * HOUR);
    expect(scheduleStartOf(T, { ageAtDispatchMs: 24 * HOUR })).toBe(T - 24 * HOUR);
    expect(scheduleStartOf(T, { ageAtDispatchMs: 24 * HOUR + 1 })).toBe(T - 24 * HOUR);
    expect(scheduleStartOf(T, { ageAtDispatchMs: 30 * 24 * HOUR })).toBe(T - 24 * HOUR);
  });
});

describe('FlowClock', () => {
  it('on time: a wait runs its full length from the start', () => {
    const clock = new FlowClock(T);
    expect(clock.wait(HOUR, T + 40)).toBe(HOUR - 40);
    expect(clock.due).toBe(T + HOUR);
  });

  it('late: a wait whose time has passed ends at once, and the next counts from where the first was due', () => {
    const started = T + 90 * MINUTE; // the event was at T, the run started 90 min later
    const clock = new FlowClock(scheduleStartOf(started, { ageAtDispatchMs: 90 * MINUTE }));
    expect(clock.wait(HOUR, started)).toBe(0);
    expect(clock.wait(HOUR, started)).toBe(30 * MINUTE);
    expect(clock.due).toBe(T + 2 * HOUR);
  });

  it('a send moves the schedule to when it went out, so the next email keeps its spacing', () => {
    const started = T + 23 * HOUR;
    const clock = new FlowClock(scheduleStartOf(started, { ageAtDispatchMs: 23 * HOUR }));
    expect(clock.wait(HOUR, started)).toBe(0);
    clock.stepDone('send', started + 2 * SECOND);
    expect(clock.wait(23 * HOUR, started + 2 * SECOND)).toBe(23 * HOUR);
  });

  it('a wait_for moves the schedule to when it ended; split, update_profile and exit take no time', () => {
    const clock = new FlowClock(T);
    for (const kind of ['split', 'update_profile', 'exit'] as const) clock.stepDone(kind, T + HOUR);
    expect(clock.due).toBe(T);
    clock.stepDone('wait_for', T + HOUR);
    expect(clock.due).toBe(T + HOUR);
    // Never backwards: a step finishing before the schedule (a clock read earlier) leaves it.
    clock.stepDone('send', T);
    expect(clock.due).toBe(T + HOUR);
  });

  it('a wait until a time of day counts from when the previous step was due, and has passed if that moment has', () => {
    const nineAm = (from: number) => msUntilTimeOfDay(from, 9, 0, 'UTC');
    // The event at 23:50; the run started at 10:00 the next morning: 09:00 has passed.
    const late = new FlowClock(T);
    expect(late.waitUntil(nineAm, Date.UTC(2026, 2, 11, 10))).toBe(0);
    expect(late.due).toBe(Date.UTC(2026, 2, 11, 9));
    // Started on time: it waits until 09:00.
    const onTime = new FlowClock(T);
    expect(onTime.waitUntil(nineAm, T)).toBe(9 * HOUR + 10 * MINUTE);
  });
});
