// The baseline's workflow: does nothing, so `client.workflow.start` → server startTime measures only
// Temporal's own start path on the same dev server. Bundled for a bench-only Worker on its own task queue.
export async function benchNoopWorkflow(): Promise<void> {
  // Intentionally empty.
}
