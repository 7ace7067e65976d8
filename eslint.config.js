import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';
import svelte from 'eslint-plugin-svelte';
import svelteConfig from './svelte.config.js';

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', 'test-results/', 'data/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  ...svelte.configs.recommended,
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
      'no-restricted-imports': ['error', { patterns: [{ regex: '^(\\.\\./)+test(/|$)', message: 'bench/ and support/ import nothing from test/: move what both need to support/' }] }],
    },
  },
);
