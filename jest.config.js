/** Unit tests sit beside their module; tests that cross processes live in test/. */
const common = require("./test/jest-common");

/** @type {import('jest').Config} */
module.exports = {
  // A global option (jest ignores it inside a project): synth and cross-process tests take long.
  testTimeout: 180000,
  projects: [
    {
      ...common,
      displayName: "unit",
      roots: ["<rootDir>/core", "<rootDir>/functions", "<rootDir>/worker", "<rootDir>/local"],
      testMatch: ["**/*.test.ts"],
    },
    {
      ...common,
      displayName: "infra",
      roots: ["<rootDir>/infra", "<rootDir>/localstack"],
      testMatch: ["**/*.test.ts"],
    },
    {
      ...common,
      displayName: "integration",
      roots: ["<rootDir>/test"],
      testMatch: ["**/*.test.ts"],
      globalSetup: "<rootDir>/test/global-setup.ts",
      globalTeardown: "<rootDir>/test/global-teardown.ts",
    },
  ],
};
