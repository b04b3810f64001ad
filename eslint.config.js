// Lint: workflow code runs in Temporal's deterministic sandbox and is replayed,
// so it may not import Node built-ins or any I/O library; tooling enforces it.
const tseslint = require('typescript-eslint');
const { builtinModules } = require('node:module');

const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];
const ioLibraries = ['express', 'mjml', 'handlebars', 'nodemailer', 'better-sqlite3', 'pg', 'kysely', 'yaml', 'sift'];

module.exports = tseslint.config(
  { ignores: ['node_modules/**', '.temporal/**', '.data/**', 'dist/**', 'coverage/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-require-imports': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['workflows/**/*.ts'],
    ignores: ['workflows/**/*.test.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: [...nodeBuiltins, ...ioLibraries].map((name) => ({
            name,
            message: 'Workflow code is replayed deterministically: do I/O in activities/, not in workflows/.',
            allowTypeImports: true,
          })),
          patterns: [
            { group: ['../activities/*', '../store/*', '../server/*', '../cli/*'], message: 'Workflows import activities as types only (import type).', allowTypeImports: true },
          ],
        },
      ],
    },
  },
);
