// The small HTML pages of the unsubscribe link: the confirm page a GET shows, the confirmation a POST answers, the
// refusal of a forged link, and the answer to a link used too often. No scripts, styles inline, nothing loaded from elsewhere.
import type { Response } from 'express';
import { escapeHtml, htmlPage } from './html-page';

function page(title: string, body: string): string {
  return htmlPage(title, body, 'body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#222;line-height:1.5}button{font-size:1rem;padding:.6rem 1.2rem;cursor:pointer}');
}

/**
 * The landing page of the visible link. It changes nothing: link scanners and previews follow links, so only the
 * button (a POST to this same URL, as a mailbox provider's one-click does) unsubscribes.
 */
export function confirmUnsubscribePage(): string {
  return page(
    'Unsubscribe from marketing emails?',
    `<p>You will stop receiving marketing emails from us. Emails about your orders and account still arrive.</p>
<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click"><button type="submit">Unsubscribe</button></form>`,
  );
}

export function unsubscribedPage(): string {
  return page('You are unsubscribed', '<p>You will receive no more marketing emails from us. Emails about your orders and account still arrive.</p>');
}

export function tooManyRequestsPage(): string {
  return page('Please try again in a minute', '<p>This link was used many times in a short while. Please wait a minute, then use it again.</p>');
}

export function invalidLinkPage(reason: string): string {
  return page(
    'This unsubscribe link is not valid',
    `<p>The link may have been cut short or changed on its way to you. Please use the unsubscribe link in one of our emails as it is.</p>
<p><small>${escapeHtml(reason)}</small></p>`,
  );
}

/** Answers an HTML page that no cache, crawler or outgoing Referer should keep (its URL is the customer's token). */
export function sendPage(res: Response, status: number, html: string): void {
  res
    .status(status)
    .set({
      'Content-Type': 'text/html; charset=utf-8',
      'Cache-Control': 'no-store',
      'Referrer-Policy': 'no-referrer',
      'X-Robots-Tag': 'noindex, nofollow',
      'Content-Security-Policy': "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
    })
    .send(html);
}
