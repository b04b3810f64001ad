#!/usr/bin/env node
// Runs a TypeScript entry script (benchmarks, tools) through tsx: `node bin/run-ts.js bench/x.ts`.
require('tsx/cjs');
const path = require('node:path');
const script = process.argv[2];
if (!script) { console.error('usage: node bin/run-ts.js <file.ts> [args]'); process.exit(2); }
process.argv.splice(1, 1);
require(path.resolve(script));
