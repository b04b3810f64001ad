// The identify of a customer with an email address and email marketing consent: what a send, a tracked link or a
// preference link needs to exist before a test attacks it.
import type { NewEvent } from '../../store/store';

export function subscribedCustomer(customerId: string, at: number): NewEvent {
  return {
    messageId: `${customerId}-identify`,
    type: 'identify',
    name: null,
    customerId,
    userId: customerId,
    anonymousId: null,
    properties: {},
    traits: { email: `${customerId}@example.com`, consent: { email_marketing: true } },
    context: {},
    timestamp: at,
    receivedAt: at,
  };
}
