#!/usr/bin/env node
// Runs the compiled CLI (dist/node, built by `npm install` / `npm run build:node` from src/cli).
import { existsSync } from 'node:fs';

const entry = new URL('../dist/node/spl.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('spl: the compiled CLI is missing (dist/node/spl.js): run npm run build:node\n');
  process.exit(1);
}
await import(entry.href);
