#!/usr/bin/env bash
# The test command (`npm test`): typecheck, lint (workflows may not import Node built-ins or I/O),
# make sure Debian's Chromium is there for the browser tests, then every jest suite in one process (2 cores: --runInBand). Extra args go to jest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-chromium.sh
npx tsc --noEmit -p .
npx eslint --max-warnings 0 .
if [ -z "${TEST_DATABASE_URL:-}" ]; then
  echo "TEST_DATABASE_URL is unset: PostgreSQL suites run on SQLite only (set it, e.g. postgres://postgres@127.0.0.1:5432/test)"
fi
results="$(mktemp)"
status=0
npx jest --runInBand --json --outputFile="$results" "$@" || status=$?
# One plain closing line that any CI can read: passed and failed test counts.
node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); console.log(`jest: ${r.numPassedTests} passed, ${r.numFailedTests + r.numRuntimeErrorTestSuites} failed`)' "$results" || true
rm -f "$results"
exit "$status"
