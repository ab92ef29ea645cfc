// ESLint (flat config): typescript-eslint's recommended rules on the sources, ESLint's on the tests.
"use strict";
const js = require("@eslint/js");
const tseslint = require("typescript-eslint");
const nodeGlobals = {
  require: "readonly", module: "writable", process: "readonly", __dirname: "readonly",
  console: "readonly", setTimeout: "readonly", clearTimeout: "readonly", fetch: "readonly",
  Buffer: "readonly", URL: "readonly",
};

module.exports = tseslint.config(
  { ignores: ["dist/", "node_modules/", "test/tmp/"] },
  {
    files: ["src/**/*.ts"],
    extends: [js.configs.recommended, ...tseslint.configs.recommended],
  },
  {
    files: ["**/*.js"],
    extends: [js.configs.recommended],
    languageOptions: { sourceType: "commonjs", globals: nodeGlobals },
    rules: { "no-unused-vars": ["error", { argsIgnorePattern: "^_" }] },
  },
);
