// A real SMTP server on a loopback socket that keeps every message it accepts, parsed, for assertions.
import type { AddressInfo } from 'node:net';
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';

export interface ReceivedMail {
  to: string;
  from: string;
  subject: string;
  html: string;
  text: string;
  messageId: string;
  date: Date;
  headers: Map<string, unknown>;
  /** Each header as sent (lower-case name → unfolded value), before mailparser's interpretation. */
  rawHeaders: Map<string, string>;
  /** wall-clock time the SMTP server accepted it */
  receivedAt: number;
}

/** A message the sink has received and keeps unanswered (no 250 yet) until the test releases it. */
export interface HeldReply {
  /** Resolves with the message once it has arrived (it is already in `messages`). */
  arrived: Promise<ReceivedMail>;
  /** Sends the 250 that accepts it. */
  release(): void;
}

export interface SmtpSink {
  url: string;
  messages: ReceivedMail[];
  /** The next message to a recipient matching `to` is held before its 250, so a test can act in between. */
  holdReply(to: (recipient: string) => boolean): HeldReply;
  /** Resolves once at least `count` messages have arrived. */
  waitForCount(count: number, timeoutMs?: number): Promise<ReceivedMail[]>;
  close(): Promise<void>;
}

function addressText(value: ParsedMail['to'] | ParsedMail['from']): string {
  if (!value) return '';
  return (Array.isArray(value) ? value : [value]).map((a) => a.text).join(', ');
}

export async function startSmtpSink(): Promise<SmtpSink> {
  const messages: ReceivedMail[] = [];
  const holds: Array<{ to: (recipient: string) => boolean; arrive(mail: ReceivedMail): void; released: Promise<void> }> = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData(stream, _session, callback) {
      simpleParser(stream)
        .then(async (mail) => {
          const received: ReceivedMail = {
            to: addressText(mail.to),
            from: addressText(mail.from),
            subject: mail.subject ?? '',
            html: typeof mail.html === 'string' ? mail.html : '',
            text: mail.text ?? '',
            messageId: mail.messageId ?? '',
            date: mail.date ?? new Date(0),
            headers: mail.headers,
            rawHeaders: new Map(mail.headerLines.map((h) => [h.key, h.line.slice(h.line.indexOf(':') + 1).replace(/\r?\n[ \t]+/g, ' ').trim()])),
            receivedAt: Date.now(),
          };
          messages.push(received);
          const hold = holds.findIndex((h) => h.to(received.to));
          if (hold >= 0) {
            const [held] = holds.splice(hold, 1);
            held!.arrive(received);
            await held!.released;
          }
          callback();
        })
        .catch((err: Error) => callback(err));
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.server.address() as AddressInfo;
  return {
    url: `smtp://127.0.0.1:${port}`,
    messages,
    holdReply(to) {
      let arrive!: (mail: ReceivedMail) => void;
      let release!: () => void;
      const arrived = new Promise<ReceivedMail>((resolve) => (arrive = resolve));
      const released = new Promise<void>((resolve) => (release = resolve));
      holds.push({ to, arrive, released });
      return { arrived, release };
    },
    async waitForCount(count, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      while (messages.length < count) {
        if (Date.now() > deadline) throw new Error(`expected ${count} emails, got ${messages.length}: ${messages.map((m) => m.subject).join(' | ')}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      return messages;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
