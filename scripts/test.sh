#!/usr/bin/env bash
# The test command (`npm test`): typecheck, lint (workflows may not import Node built-ins or I/O), `microflows check`,
# make sure Debian's Chromium is there for the browser tests, then every jest suite in one process (2 cores: --runInBand). Extra args go to jest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-chromium.sh
npx tsc --noEmit -p .
npx eslint --max-warnings 0 .
# The shipped flows must pass the static review (overlaps, ties, caps that starve a flow) before anything runs.
node bin/microflows.js check >/dev/null || { node bin/microflows.js check; exit 1; }
if [ -z "${TEST_DATABASE_URL:-}" ]; then
  echo "TEST_DATABASE_URL is unset: the PostgreSQL suites are registered as skipped (set it, e.g. postgres://postgres@127.0.0.1:5432/test)"
fi
results="$(mktemp)"
status=0
npx jest --runInBand --json --outputFile="$results" "$@" || status=$?
# One plain closing line that any CI can read: passed, failed and skipped test counts. A PostgreSQL suite without
# TEST_DATABASE_URL registers as skipped; with it set (as in .ci/run) a full run may skip nothing, so a skip fails it
# (a run given jest arguments may filter tests out with -t, which jest counts as skipped).
node -e '
const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
const skipped = r.numPendingTests + r.numTodoTests;
console.log(`jest: ${r.numPassedTests} passed, ${r.numFailedTests + r.numRuntimeErrorTestSuites} failed, ${skipped} skipped`);
if (process.env.TEST_DATABASE_URL && process.argv[2] === "full" && skipped > 0) {
  console.log(`jest: ${skipped} tests were skipped although TEST_DATABASE_URL is set: every suite must run here`);
  process.exit(1);
}' "$results" "$([ $# -eq 0 ] && echo full || echo filtered)" || status=$((status == 0 ? 1 : status))
rm -f "$results"
exit "$status"
