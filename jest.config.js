/** Unit tests sit beside their module; tests that cross processes live in test/. */
const transform = { "^.+\\.tsx?$": ["ts-jest", { isolatedModules: true, diagnostics: false }] };
const common = { testEnvironment: "node", transform, moduleFileExtensions: ["ts", "js", "json"] };

/** @type {import('jest').Config} */
module.exports = {
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
      testTimeout: 180000,
    },
    {
      ...common,
      displayName: "integration",
      roots: ["<rootDir>/test"],
      testMatch: ["**/*.test.ts"],
      globalSetup: "<rootDir>/test/global-setup.ts",
      globalTeardown: "<rootDir>/test/global-teardown.ts",
      testTimeout: 120000,
    },
  ],
};
