import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

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
  { ignores: ['node_modules/', 'dist/', 'test-results/', 'data/', '**/*.svelte'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      globals: { ...globals.node, ...globals.browser },
      parserOptions: { projectService: { allowDefaultProject: ['*.js', 'bin/*.js', 'scripts/*.js'] }, tsconfigRootDir: import.meta.dirname },
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
      'no-restricted-imports': ['error', { patterns: [{ regex: '^(?!@noble/|\\./|\\.\\./).*', message: 'src/core imports only @noble/* and itself' }] }],
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
      'no-restricted-imports': ['error', { patterns: [{ regex: '^\\.\\./(?!core(/|$)|store(/|$))', message: 'src/sync (the platform-free engine) depends on src/core and src/store only' }] }],
    },
  },
  // The browser side: src/browser is the composition root of page and service worker (it opens the
  // IndexedDB store); src/ui and src/sw see the store only through src/sync. None of them touch Node.
  ...layer('src/browser', ['core', 'store', 'sync'], 'src/browser (browser wiring) depends on src/core, src/store and src/sync only, and on nothing from Node'),
  ...layer('src/ui', ['core', 'sync', 'browser'], 'src/ui depends on src/sync, src/browser and src/core only (store types come re-exported by src/sync), and on nothing from Node'),
  ...layer('src/sw', ['core', 'sync', 'browser'], 'src/sw depends on src/sync, src/browser and src/core only (store types come re-exported by src/sync), and on nothing from Node'),
  // The headless peer wires Node to the engine; the relay is a separate program (spl-relay), the
  // browser parts are not for Node.
  ...layer('src/cli', ['core', 'store', 'sync'], 'src/cli depends on src/core, src/store and src/sync only (not on the relay, the browser wiring, the UI or the service worker)', { node: true }),
  {
    files: ['src/relay/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ regex: '^\\.\\./(?!core(/|$))', message: 'src/relay depends on src/core only' }] }],
    },
  },
  {
    files: ['src/relay/*/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ regex: '^\\.\\./\\.\\./(?!core(/|$))', message: 'src/relay depends on src/core only' }] }],
    },
  },
);
