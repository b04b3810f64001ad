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

export function createSmtpMailer(smtpUrl: string): SmtpMailer {
  const transport = nodemailer.createTransport(smtpUrl);
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
