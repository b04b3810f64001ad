// Delivery transports: SMTP through nodemailer when SMTP_URL is set, otherwise the store's outbox.
import nodemailer from 'nodemailer';

export interface OutgoingEmail {
  from: string;
  to: string;
  subject: string;
  html: string;
  text: string;
  /** Stable per delivery key, so a receiver can drop the duplicate of a resend after a crash. */
  messageId: string;
  /** The flow's time of sending (workflow time). */
  date: Date;
  headers: Record<string, string>;
}

export interface SmtpMailer {
  send(email: OutgoingEmail): Promise<void>;
  close(): void;
}

/**
 * nodemailer waits up to 2 minutes to connect and an hour on a silent socket. A send stuck that long holds its
 * activity until the 2-minute start-to-close timeout; failing sooner lets the retry go out on a fresh connection.
 * A timeout set in SMTP_URL's query (nodemailer reads `?socketTimeout=…`) wins.
 */
const SMTP_TIMEOUTS_MS = { connectionTimeout: 10_000, greetingTimeout: 10_000, socketTimeout: 30_000 };

export function smtpUrlWithTimeouts(smtpUrl: string): string {
  const url = new URL(smtpUrl);
  for (const [name, ms] of Object.entries(SMTP_TIMEOUTS_MS)) if (!url.searchParams.has(name)) url.searchParams.set(name, String(ms));
  return url.toString();
}

export function createSmtpMailer(smtpUrl: string): SmtpMailer {
  const transport = nodemailer.createTransport(smtpUrlWithTimeouts(smtpUrl));
  return {
    async send(email) {
      await transport.sendMail({
        from: email.from,
        to: email.to,
        subject: email.subject,
        html: email.html,
        text: email.text,
        messageId: email.messageId,
        date: email.date,
        headers: email.headers,
      });
    },
    close: () => transport.close(),
  };
}
