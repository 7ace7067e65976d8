#!/usr/bin/env node
// Runs the TypeScript CLI directly (tsx), so the installed command is always the source.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
