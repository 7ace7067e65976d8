import { defineConfig } from 'vitest/config';

// Two groups: everything in Node first (files in parallel), then the tests that drive Chromium
// or whole process constellations (servers, daemons, network namespaces), one file at a time.
// Measured on the 2-core machine: two Chromium files side by side pushed single steps past their
// timeouts under load (clicks and long-polls waiting > 30 s); one at a time they take seconds.
const BROWSER = ['test/e2e/**/*.test.ts', 'test/**/*.chromium.test.ts'];

export default defineConfig({
  test: {
    // Builds dist/node once: tests spawn the compiled bins.
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    projects: [
      { extends: true, test: { name: 'node', include: ['test/**/*.test.ts'], exclude: BROWSER, sequence: { groupOrder: 0 } } },
      // A step here is a browser or a process doing real work: on a loaded 2-core machine a long
      // story (ten screens, three peers) can pass 30 s without anything being wrong; 90 s still
      // bounds a hang.
      // One retry: in full runs on this machine about one e2e step in 500 still lost a race with
      // the browser (typed text dropped by a re-render, a long-poll answered late); each of those
      // passed on every rerun, and a real fault fails both attempts. The report lists retries.
      { extends: true, test: { name: 'e2e', include: BROWSER, sequence: { groupOrder: 1 }, maxWorkers: 1, testTimeout: 90_000, retry: 1 } },
    ],
  },
});
