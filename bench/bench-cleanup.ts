// Temp dirs and throwaway databases a benchmark made, removed when its work ends and on SIGINT and SIGTERM, so an
// interrupted run leaves nothing behind.

const cleanups = new Set<() => Promise<void>>();

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`\n[bench] ${signal}: removing temp files and throwaway databases`);
    void Promise.allSettled([...cleanups].map((c) => c())).then(() => process.exit(130));
  });
}

/** Runs `work`, then `cleanup` once: after the work ends, or on a signal while it runs. */
export async function withCleanup<T>(cleanup: () => Promise<void>, work: () => Promise<T>): Promise<T> {
  let done = false;
  const once = async () => {
    if (done) return;
    done = true;
    await cleanup();
  };
  cleanups.add(once);
  try {
    return await work();
  } finally {
    cleanups.delete(once);
    await once();
  }
}
