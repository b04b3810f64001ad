// The preference center's HTML: the page that lists the topics with the customer's choices, the same page with a
// confirmation after a save, and the refusals (a forged or expired link, an unknown customer, a link used too often).
// Plain HTML forms, no script (the strict CSP allows none), styles inline; accessible: lang and title, a fieldset and
// legend around the choices, a label for every checkbox, a visible focus ring, and text contrast of at least 4.5:1.
import type { TopicChoice } from '../core/preferences';
import { escapeHtml, htmlPage } from './html-page';

/**
 * Colours on white: text #1f1f1f (16:1), hints #4d4d4d (8.5:1), the primary button white on #1a4fd6 (6.3:1), the leave
 * button #a11a1a on white (7.2:1). The focus ring is 3 px, offset, in a colour of its own.
 */
const STYLE = [
  'body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;color:#1f1f1f;background:#fff;line-height:1.5}',
  'fieldset{border:1px solid #767676;border-radius:6px;padding:1rem;margin:0 0 1.25rem}',
  'legend{font-weight:600;padding:0 .25rem}',
  '.choice{margin:.5rem 0 .9rem}',
  '.choice label{font-weight:600;margin-left:.4rem}',
  '.hint{margin:.15rem 0 0 1.9rem;color:#4d4d4d;font-size:.95rem}',
  'input[type=checkbox]{width:1.15rem;height:1.15rem;vertical-align:-.15rem}',
  'button{font-size:1rem;padding:.6rem 1.2rem;border-radius:6px;cursor:pointer}',
  '.save{background:#1a4fd6;color:#fff;border:2px solid #1a4fd6}',
  '.leave{background:#fff;color:#a11a1a;border:2px solid #a11a1a}',
  ':focus-visible{outline:3px solid #b35c00;outline-offset:3px}',
  '.status{border-left:4px solid #1b7a34;background:#f1f8f3;padding:.6rem .9rem;margin:0 0 1.25rem}',
  '.note{color:#4d4d4d}',
].join('');

function page(title: string, body: string): string {
  return htmlPage(title, body, STYLE, { main: true });
}

export interface PreferencesView {
  brandName: string | null;
  topics: TopicChoice[];
  /** The customer's email_marketing consent: false means they left everything. */
  emailMarketing: boolean | undefined;
  /** After a POST: what the confirmation says. */
  saved?: 'saved' | 'unchanged' | 'left';
}

const CONFIRMATIONS: Record<NonNullable<PreferencesView['saved']>, string> = {
  saved: 'Your preferences are saved.',
  unchanged: 'Your preferences are saved: nothing needed to change.',
  left: 'You are unsubscribed from all our marketing emails.',
};

function topicChoice(topic: TopicChoice): string {
  const id = `topic-${topic.id}`;
  const hint = topic.description ? `\n<p class="hint" id="${id}-hint">${escapeHtml(topic.description)}</p>` : '';
  const describedBy = topic.description ? ` aria-describedby="${id}-hint"` : '';
  return `<div class="choice">
<input type="checkbox" id="${id}" name="topic" value="${escapeHtml(topic.id)}"${topic.on ? ' checked' : ''}${describedBy}><label for="${id}">${escapeHtml(topic.label)}</label>${hint}
</div>`;
}

/** The preference center: the topics with the customer's choices, a save button, and a "leave everything" button. */
export function preferencesPage(view: PreferencesView): string {
  const from = view.brandName ? ` from ${escapeHtml(view.brandName)}` : '';
  const status = view.saved ? `<p class="status" role="status">${CONFIRMATIONS[view.saved]}</p>\n` : '';
  const left = view.emailMarketing === false;
  const choices =
    view.topics.length > 0
      ? view.topics.map(topicChoice).join('\n')
      : '<p class="note">There are no topics to choose from at the moment.</p>';
  const resubscribe = left
    ? `<fieldset>
<legend>You are unsubscribed from our marketing emails</legend>
<div class="choice">
<input type="checkbox" id="resubscribe" name="resubscribe" value="yes"><label for="resubscribe">Email me again about the topics ticked above</label>
</div>
</fieldset>
`
    : '';
  return page(
    'Your email preferences',
    `${status}<p>Choose which emails you get${from}. Emails about your orders and account always arrive.</p>
<form method="post">
<input type="hidden" name="action" value="save">
<fieldset>
<legend>Send me emails about</legend>
${choices}
</fieldset>
${resubscribe}<button type="submit" class="save">Save preferences</button>
</form>
<h2>Leave everything</h2>
<form method="post">
<input type="hidden" name="action" value="leave">
<p>Stop every marketing email${from}, whatever the topic.</p>
<button type="submit" class="leave">Unsubscribe from all marketing emails</button>
</form>`,
  );
}

export function invalidPreferencesLinkPage(reason: string): string {
  return page(
    'This preferences link is not valid',
    `<p>The link may have been cut short or changed on its way to you. Please use the "Manage preferences" link in one of our emails as it is. Nothing was changed.</p>
<p class="note"><small>${escapeHtml(reason)}</small></p>`,
  );
}

export function expiredPreferencesLinkPage(): string {
  return page(
    'This preferences link has expired',
    '<p>Please use the "Manage preferences" link in a more recent email from us. Nothing was changed. The "Unsubscribe" link of any of our emails always works.</p>',
  );
}

export function unknownCustomerPage(): string {
  return page('We hold no preferences for you', '<p>We hold no record for the customer of this link, so there is nothing to choose. Nothing was changed.</p>');
}

export function unreadableFormPage(reason: string): string {
  return page('Your choices could not be read', `<p>Please go back, and save your preferences again from the page. Nothing was changed.</p>
<p class="note"><small>${escapeHtml(reason)}</small></p>`);
}

export function preferencesTooManyRequestsPage(): string {
  return page('Please try again in a minute', '<p>This link was used many times in a short while. Please wait a minute, then use it again.</p>');
}
