// What SQLite spends per event under three ways of keeping profiles, on raw better-sqlite3 (no microflows code):
// today's (the event row plus an update of the customer's profile row, in one transaction), the profile's
// snapshot carried in the event row instead (read back through a (customer_id, id) index), and the events alone
// (what a write-back profile cache leaves in the ingest transaction). 20,000 customers with 5 events each, then
// 60 transactions of 200 events for random customers; rows of ~1 KB; WAL, synchronous=NORMAL.
//   npx tsx bench/profile-storage.ts
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { seededRandom } from '../test/support/seeded-random';

const CUSTOMERS = 20_000;
const TRANSACTIONS = 60;
const EVENTS_PER_TRANSACTION = 200;
/** Distinct content each time: SQLite skips rewriting a row whose bytes did not change. */
const pad = (n: number) => `${Math.random()}`.padEnd(n, 'x');

type Design = 'profile row' | 'snapshot in the event row' | 'events only';

function measure(design: Design, dir: string): { pagesPerEvent: number; microsPerEvent: number } {
  const file = path.join(dir, `${design.replace(/ /g, '-')}.db`);
  const db = new BetterSqlite3(file);
  db.pragma('journal_mode = WAL');
  db.pragma('wal_autocheckpoint = 0');
  db.pragma('synchronous = NORMAL');
  db.pragma('cache_size = -65536');
  const snapshot = design === 'snapshot in the event row';
  db.exec('create table events (id integer primary key, message_id text not null unique, customer_id text not null, name text, ts integer not null, data text not null, snapshot text)');
  db.exec(snapshot ? 'create index events_customer_id on events (customer_id, id)' : 'create index events_customer_name_time on events (customer_id, name, ts)');
  db.exec('create table profiles (customer_id text primary key, email text, data text not null)');
  const insertProfile = db.prepare('insert into profiles values (?, ?, ?)');
  const insertEvent = db.prepare('insert into events (message_id, customer_id, name, ts, data, snapshot) values (?, ?, ?, ?, ?, ?)');
  let seq = 0;
  db.transaction(() => {
    for (let i = 0; i < CUSTOMERS; i++) {
      insertProfile.run(`user-${i}`, `user-${i}@example.com`, pad(900));
      for (let k = 0; k < 5; k++) insertEvent.run(`m-${seq++}`, `user-${i}`, 'Product Viewed', seq, pad(1000), snapshot ? pad(900) : null);
    }
  })();
  db.pragma('wal_checkpoint(TRUNCATE)');
  const updateProfile = db.prepare('update profiles set data = ? where customer_id = ?');
  const readProfile = snapshot
    ? db.prepare('select snapshot from events where customer_id = ? and snapshot is not null order by id desc limit 1')
    : db.prepare('select data from profiles where customer_id = ?');
  const random = seededRandom(7);
  const start = performance.now();
  for (let t = 0; t < TRANSACTIONS; t++) {
    db.transaction(() => {
      for (let j = 0; j < EVENTS_PER_TRANSACTION; j++) {
        const customer = `user-${Math.floor(random() * CUSTOMERS)}`;
        if (design !== 'events only') readProfile.get(customer);
        insertEvent.run(`m-${seq++}`, customer, 'Product Viewed', seq, pad(1000), snapshot ? pad(900) : null);
        if (design === 'profile row') updateProfile.run(pad(900), customer);
      }
    })();
  }
  const micros = (performance.now() - start) * 1000;
  const events = TRANSACTIONS * EVENTS_PER_TRANSACTION;
  const frames = (fs.statSync(`${file}-wal`).size - 32) / (4096 + 24);
  db.close();
  return { pagesPerEvent: frames / events, microsPerEvent: micros / events };
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'profile-storage-'));
try {
  console.log('| design | WAL pages/event | SQLite µs/event |\n| --- | ---: | ---: |');
  for (const design of ['profile row', 'snapshot in the event row', 'events only'] as const) {
    const { pagesPerEvent, microsPerEvent } = measure(design, dir);
    console.log(`| ${design}${design === 'profile row' ? ' (today, the baseline)' : ''} | ${pagesPerEvent.toFixed(2)} | ${microsPerEvent.toFixed(1)} |`);
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
