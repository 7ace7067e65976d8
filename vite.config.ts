/**
 * The installable PWA: Svelte 5 UI (src/ui) and a TypeScript service worker (src/sw/sw.ts) built
 * with vite-plugin-pwa's injectManifest strategy, which fills `self.__WB_MANIFEST` with the shell.
 *
 * SPL_DEFAULT_RELAY (env, at build time) becomes the catch-all relay the onboarding screen
 * suggests, so `npm start` and the e2e harness work out of the box.
 */
import { defineConfig } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { VitePWA } from 'vite-plugin-pwa';

const defaultRelay = process.env.SPL_DEFAULT_RELAY ?? '';

export default defineConfig(({ command }) => ({
  base: './',
  define: {
    __SPL_DEFAULT_RELAY__: JSON.stringify(defaultRelay),
    // The dev server serves the worker as an ES module at /dev-sw.js; builds emit a classic ./sw.js.
    __SPL_SW_DEV__: JSON.stringify(command === 'serve'),
  },
  server: { host: '127.0.0.1' },
  preview: { host: '127.0.0.1' },
  // dist/app: dist/node holds the compiled CLI and relay (scripts/build-node.js), which a build must not wipe.
  build: {
    target: 'es2022',
    sourcemap: true,
    outDir: 'dist/app',
    // Rolldown's [PLUGIN_TIMINGS] notes fire whenever the machine is busy; they are not actionable here.
    rolldownOptions: { checks: { bundlerTimings: false } },
  },
  plugins: [
    svelte(),
    VitePWA({
      strategies: 'injectManifest',
      srcDir: 'src/sw',
      filename: 'sw.ts',
      // The page registers the worker itself with workbox-window (src/ui/state/sw-client.ts).
      injectRegister: false,
      registerType: 'prompt',
      integration: {
        // The worker's own (inner) build: warnings only, so a build prints what the app build prints.
        configureCustomSWViteBuild(inline) {
          inline.logLevel = 'warn';
          // (rollupOptions, which the plugin fills with the worker's entry and output name, not rolldownOptions: that would replace them)
          inline.build = { ...inline.build, rollupOptions: { ...inline.build?.rollupOptions, checks: { bundlerTimings: false } } };
        },
      },
      injectManifest: {
        globPatterns: ['**/*.{js,css,html,png,svg,webmanifest}'],
        rollupFormat: 'iife',
      },
      devOptions: { enabled: true, type: 'module', navigateFallback: 'index.html' },
      includeAssets: ['apple-touch-icon.png'],
      manifest: {
        // A stable identity for the installed app, independent of start_url (which may change).
        id: './',
        name: 'Syncropel',
        short_name: 'Syncropel',
        description: 'Notes that reach your other devices, even when they are rarely online together.',
        start_url: './',
        scope: './',
        display: 'standalone',
        background_color: '#f6f4ef',
        theme_color: '#1f5f6b',
        icons: [
          { src: 'icons/icon-192.png', sizes: '192x192', type: 'image/png', purpose: 'any' },
          { src: 'icons/icon-512.png', sizes: '512x512', type: 'image/png', purpose: 'any' },
          { src: 'icons/maskable-192.png', sizes: '192x192', type: 'image/png', purpose: 'maskable' },
          { src: 'icons/maskable-512.png', sizes: '512x512', type: 'image/png', purpose: 'maskable' },
        ],
        shortcuts: [
          {
            name: 'Threads',
            short_name: 'Threads',
            url: './#/threads',
            icons: [{ src: 'icons/icon-192.png', sizes: '192x192', type: 'image/png' }],
          },
          {
            name: 'Pair a device',
            short_name: 'Pair',
            url: './#/pair',
            icons: [{ src: 'icons/icon-192.png', sizes: '192x192', type: 'image/png' }],
          },
          {
            name: 'Sync status',
            short_name: 'Sync',
            url: './#/sync',
            icons: [{ src: 'icons/icon-192.png', sizes: '192x192', type: 'image/png' }],
          },
        ],
        // From the screen sweep (test/e2e/ui-screens.test.ts writes test-results/screens/manifest-*.png).
        screenshots: [
          {
            src: 'screenshots/thread-narrow.png',
            sizes: '390x844',
            type: 'image/png',
            form_factor: 'narrow',
            label: 'A thread on a phone',
          },
          { src: 'screenshots/thread-wide.png', sizes: '1280x800', type: 'image/png', form_factor: 'wide', label: 'A thread on a laptop' },
        ],
      },
    }),
  ],
}));
