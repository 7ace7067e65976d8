/** `spl` entry point (bin/spl.js runs the compiled form of this, dist/node/spl.js). */
import { processIo } from './io';
import { runCli } from './program';

/** Resolves once everything written to `stream` so far has left the process (or it cannot: closed pipe). */
const drained = (stream: NodeJS.WriteStream): Promise<void> =>
  new Promise((resolve) => {
    if (stream.destroyed || !stream.writable) return resolve();
    // Writes complete in order: this empty one's callback runs after every earlier chunk is flushed.
    stream.write('', () => resolve());
  });

// A reader that goes away early (`spl records | head`) closes the pipe: stop quietly, as cat does.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
}

const code = await runCli(process.argv.slice(2), processIo());
process.exitCode = code;
// stdout to a pipe is asynchronous: exiting before it drains cut `spl records --json | …` at
// 64 KiB in 3 runs of 4. Wait for both streams, then exit: keep-alive sockets of fetch must not
// hold a finished command open.
await Promise.all([drained(process.stdout), drained(process.stderr)]);
process.exit(code);
