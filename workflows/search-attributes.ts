// Typed search attributes operators filter runs by in the Temporal Web UI (CustomerId='c-42').
import { defineSearchAttributeKey, SearchAttributeType, type SearchAttributePair } from '@temporalio/common';

export const CustomerIdKey = defineSearchAttributeKey('CustomerId', SearchAttributeType.KEYWORD);
export const FlowIdKey = defineSearchAttributeKey('FlowId', SearchAttributeType.KEYWORD);
export const FlowVersionKey = defineSearchAttributeKey('FlowVersion', SearchAttributeType.INT);

/** The `--search-attribute` registrations the dev server needs. */
export const SEARCH_ATTRIBUTE_REGISTRATIONS = ['CustomerId=Keyword', 'FlowId=Keyword', 'FlowVersion=Int'];

export function customerSearchAttributes(customerId: string): SearchAttributePair[] {
  return [{ key: CustomerIdKey, value: customerId }];
}

export function flowRunSearchAttributes(customerId: string, flowId: string, version: number): SearchAttributePair[] {
  return [
    { key: CustomerIdKey, value: customerId },
    { key: FlowIdKey, value: flowId },
    { key: FlowVersionKey, value: version },
  ];
}
