/**
 * What every jest config of the project shares (jest.config.js, test/faults/jest.config.js): ts-jest
 * compiles TypeScript, and also jose, which ships ES modules only; jest's CommonJS runtime cannot
 * load those on Node.js 20 (Node.js itself can, so the tools and the bundles load jose as it is).
 */
const transform = {
  "^.+\\.tsx?$": ["ts-jest", { diagnostics: false }],
  "^.+/node_modules/jose/.+\\.js$": ["ts-jest", { diagnostics: false, tsconfig: { allowJs: true } }],
};

module.exports = {
  testEnvironment: "node",
  transform,
  transformIgnorePatterns: ["/node_modules/(?!jose/)"],
  moduleFileExtensions: ["ts", "js", "json"],
};
