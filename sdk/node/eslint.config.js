'use strict'
// eslint's flat config for the Node.js SDK, run by `make lint`. eslint and
// its rule sets are pinned in hack/tools/eslint, a package of their own, so
// that linting never changes this package's lockfile; they are required
// from there.

const path = require('node:path')

const tools = path.join(__dirname, '..', '..', 'hack', 'tools', 'eslint', 'node_modules')
let js, globals
try {
  js = require(path.join(tools, '@eslint', 'js'))
  globals = require(path.join(tools, 'globals'))
} catch (err) {
  throw new Error(`eslint's rule sets are not installed in ${tools}: run \`make lint\` (it runs npm ci there) (${err.message})`, { cause: err })
}

module.exports = [
  { ignores: ['node_modules/**'] },
  js.configs.recommended,
  {
    files: ['**/*.js'],
    languageOptions: {
      ecmaVersion: 2023,
      sourceType: 'commonjs',
      globals: { ...globals.node }
    },
    rules: {
      'no-unused-vars': ['error', { args: 'none', caughtErrors: 'none' }],
      'no-var': 'error',
      'prefer-const': 'error',
      eqeqeq: ['error', 'always', { null: 'ignore' }],
      strict: ['error', 'global']
    }
  }
]
