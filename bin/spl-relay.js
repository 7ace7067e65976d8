#!/usr/bin/env node
// Runs the compiled relay (dist/node, built by `npm install` / `npm run build:node` from src/relay).
import { existsSync } from 'node:fs';

const entry = new URL('../dist/node/spl-relay.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('spl-relay: the compiled relay is missing (dist/node/spl-relay.js): run npm run build:node\n');
  process.exit(1);
}
await import(entry.href);
