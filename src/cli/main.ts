/** `spl` entry point (bin/spl.js registers tsx and imports this). */
import { processIo } from './io';
import { runCli } from './program';

const code = await runCli(process.argv.slice(2), processIo());
// Exit now: keep-alive sockets of fetch must not hold a finished command open. stdout is a sync pipe/file on Linux.
process.exit(code);
