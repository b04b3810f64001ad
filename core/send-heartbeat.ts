// How a send shows Temporal that its worker is alive: a send whose worker died (SIGKILL, power cut) is retried once
// its heartbeat has been missed for SEND_HEARTBEAT_TIMEOUT_MS, instead of after the send's 2-minute timeout.
export const SEND_HEARTBEAT_TIMEOUT_MS = 20_000;

/** Well inside the timeout: the SDK sends at most one heartbeat per 0.8 × timeout anyway, so a busy loop has slack. */
export const SEND_HEARTBEAT_EVERY_MS = 5_000;
