/**
 * The fault-injection suite: its own config so `npm test` stays short. `npm run test:faults` runs it
 * in band; each file starts services of its own, since it kills them.
 */
/** @type {import('jest').Config} */
module.exports = {
  rootDir: "../..",
  displayName: "faults",
  ...require("../jest-common"),
  roots: ["<rootDir>/test/faults"],
  testMatch: ["**/*.fault.ts"],
  testTimeout: 600000,
};
