/** Jest runs TypeScript through ts-jest; integration suites share one process (--runInBand). */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/core', '<rootDir>/workflows', '<rootDir>/activities', '<rootDir>/store', '<rootDir>/server', '<rootDir>/cli', '<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { diagnostics: false }] },
  testTimeout: 120000,
};
