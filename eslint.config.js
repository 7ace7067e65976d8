import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';
import svelte from 'eslint-plugin-svelte';
import svelteConfig from './svelte.config.js';
import prettier from 'eslint-config-prettier';

/**
 * `no-restricted-imports` for a layer of nested folders: at each depth, a relative import that
 * leaves `dir` must land in one of `allowed` (sibling layers of src/). Unless `node`, `node:*`
 * built-ins and Node-only packages are refused too.
 * @param {string} dir
 * @param {string[]} allowed
 * @param {string} message
 * @param {{ node?: boolean }} [options]
 */
function layer(dir, allowed, message, { node = false } = {}) {
  const nodeOnly = { regex: '^(node:|better-sqlite3$|pg$|pino$|commander$|web-push$)', message };
  return [1, 2, 3].map((depth) => ({
    files: [`${dir}/${'*/'.repeat(depth - 1)}*.ts`],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ regex: `^${'\\.\\./'.repeat(depth)}(?!(${allowed.join('|')})(/|$))`, message }, ...(node ? [] : [nodeOnly])] },
      ],
    },
  }));
}

export default tseslint.config(
  // src/core/env.d.ts belongs to tsconfig.core.json alone (ambient globals for a program without DOM or Node).
  { ignores: ['node_modules/', 'dist/', 'test-results/', 'data/', 'src/core/env.d.ts'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  ...svelte.configs.recommended,
  {
    languageOptions: {
      globals: { ...globals.node, ...globals.browser },
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
    },
  },
  {
    // src/core is isomorphic: nothing from Node or a browser, only @noble/*.
    files: ['src/core/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ regex: '^(?!@noble/|\\./|\\.\\./).*', message: 'src/core imports only @noble/* and itself' }] },
      ],
    },
  },
  // The arrows between the parts (README "What is in the box"): each layer names what it may use.
  {
    files: ['src/store/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ regex: '^\\.\\./(?!core(/|$))', message: 'src/store depends on src/core only' }] }],
    },
  },
  {
    files: ['src/sync/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: '^\\.\\./(?!core(/|$)|store(/|$))',
              message: 'src/sync (the platform-free engine) depends on src/core and src/store only',
            },
          ],
        },
      ],
    },
  },
  // The browser side: src/browser is the composition root of page and service worker (it opens the
  // IndexedDB store); src/ui and src/sw see the store only through src/sync. None of them touch Node.
  ...layer(
    'src/browser',
    ['core', 'store', 'sync'],
    'src/browser (browser wiring) depends on src/core, src/store and src/sync only, and on nothing from Node',
  ),
  ...layer(
    'src/ui',
    ['core', 'sync', 'browser'],
    'src/ui depends on src/sync, src/browser and src/core only (store types come re-exported by src/sync), and on nothing from Node',
  ),
  ...layer(
    'src/sw',
    ['core', 'sync', 'browser'],
    'src/sw depends on src/sync, src/browser and src/core only (store types come re-exported by src/sync), and on nothing from Node',
  ),
  // The headless peer wires Node to the engine; the relay is a separate program (spl-relay), the
  // browser parts are not for Node.
  ...layer(
    'src/cli',
    ['core', 'store', 'sync'],
    'src/cli depends on src/core, src/store and src/sync only (not on the relay, the browser wiring, the UI or the service worker)',
    { node: true },
  ),
  {
    files: ['src/relay/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ regex: '^\\.\\./(?!core(/|$))', message: 'src/relay depends on src/core only' }] }],
    },
  },
  {
    files: ['src/relay/*/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ regex: '^\\.\\./\\.\\./(?!core(/|$))', message: 'src/relay depends on src/core only' }] },
      ],
    },
  },
  {
    // Components: Svelte's recommended rules with the TypeScript parser for <script lang="ts">.
    // Without type information (the type-aware rules need a project that holds .svelte files);
    // svelte-check (in npm test) type-checks them.
    files: ['**/*.svelte'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      parserOptions: { parser: tseslint.parser, extraFileExtensions: ['.svelte'], svelteConfig, projectService: false, project: null },
    },
    // As typescript-eslint advises for TypeScript: the compiler (svelte-check) knows DOM types and vite's defines, no-undef does not.
    rules: { ...tseslint.configs.disableTypeChecked.rules, 'no-undef': 'off' },
  },
  {
    // Rune modules (*.svelte.ts): plain TypeScript to the TS parser, type-aware like every .ts file.
    files: ['**/*.svelte.ts'],
    languageOptions: { parserOptions: { parser: tseslint.parser } },
  },
  {
    // Benchmarks and the support they share with tests (support/) never import a test or a
    // test-only harness: what both need lives in support/.
    files: ['bench/**/*.ts', 'support/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { regex: '^(\\.\\./)+test(/|$)', message: 'bench/ and support/ import nothing from test/: move what both need to support/' },
          ],
        },
      ],
    },
  },
  // Layout is Prettier's (npm run format): no lint rule argues with it.
  prettier,
);
