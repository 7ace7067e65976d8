/**
 * The `spl` command tree (commander). Commands print through CliIo and throw CliError; `runCli`
 * turns every failure into one line on stderr and an exit code (2 for usage errors).
 *
 * Each command's module is imported when that command runs, not here: building the tree (and
 * `spl --help`) then loads no SQLite, QR or crypto code. Measured on the 2-core dev machine:
 * `spl --help` ~0.12 s compiled, against 3–6 s through tsx (`npm run bench`, cli-start).
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { makeContext, type CliContext } from './context';
import { CliError, oneLine, peerErrorHint } from './errors';
import { resolveHome } from './home';
import type { CliIo } from './io';
import { parseAppUrl, parseLongPoll, parsePort, parsePublicUrl, parseThread, parseTtlDays } from './parse';

interface GlobalOptions {
  readonly home?: string;
  readonly appUrl?: string;
}

/** Commander calls parsers with (value, previous); ours throw UsageError, which commander must see as its own. */
function parser<T>(fn: (v: string) => T): (v: string) => T {
  return (v) => {
    try {
      return fn(v);
    } catch (e) {
      throw new InvalidArgumentError(oneLine(e));
    }
  };
}

const collect = (v: string, prev: string[] = []): string[] => [...prev, parseThread(v)];

function buildProgram(io: CliIo, setExit: (code: number) => void): Command {
  const program = new Command('spl');
  program
    .description('Syncropel headless peer: records, pairing, relays and the sync daemon')
    .option('--home <dir>', 'data directory (default: $SPL_HOME, $XDG_DATA_HOME/syncropel or ~/.syncropel)')
    .addOption(
      new Option(
        '--app-url <url>',
        'URL of the Syncropel app invite links open (default: $SPL_APP_URL, spl config app-url, else the app of the last accepted invite)',
      ).argParser(parser(parseAppUrl)),
    )
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err, outputError: (s, write) => write(s) })
    .showSuggestionAfterError(false)
    .allowExcessArguments(false);

  const ctx = (cmd: Command): CliContext => {
    const g = cmd.optsWithGlobals<GlobalOptions>();
    const env = io.env.SPL_APP_URL?.trim() ? parseAppUrl(io.env.SPL_APP_URL, 'SPL_APP_URL') : undefined;
    return makeContext(io, resolveHome(g.home, io.env), { ...(g.appUrl ? { flag: g.appUrl } : {}), ...(env ? { env } : {}) });
  };

  program
    .command('init')
    .description('create this peer’s identity (an Ed25519 did:key)')
    .option('--name <name>', 'display name other devices see (default: the host name)')
    .option('--import <file>', 'restore an identity, its relays and pairs from an encrypted backup (passphrase in $SPL_PASSPHRASE)')
    .action(async (o: { name?: string; import?: string }, cmd: Command) => (await import('./commands/identity')).initCommand(ctx(cmd), o));

  program
    .command('identity')
    .description('show DID, name, relays and the direct URL')
    .option('--json', 'machine-readable output')
    .option('--export <file>', 'write the identity with its relays and pairs, encrypted with $SPL_PASSPHRASE, to a new file')
    .action(async (o: { json?: boolean; export?: string }, cmd: Command) =>
      (await import('./commands/identity')).identityCommand(ctx(cmd), o),
    );

  program
    .command('serve')
    .description('serve direct delivery, receive from relays and flush the outbox')
    .addOption(new Option('--port <port>', 'port for POST /v1/sync/records (0 = any free port)').default(9100).argParser(parser(parsePort)))
    .option('--host <host>', 'address to bind', '127.0.0.1')
    .addOption(
      new Option(
        '--public-url <url>',
        'a URL peers reach this endpoint at (repeatable: the first is advertised in invites; all are accepted as Host). Without it no direct URL is advertised',
      ).argParser((v: string, prev: string[] | undefined) => [...(prev ?? []), parser(parsePublicUrl)(v)]),
    )
    .addOption(
      new Option('--long-poll <seconds>', 'seconds each receive request waits at the relay (1-30)')
        .default(25)
        .argParser(parser(parseLongPoll)),
    )
    .option('--daemon', 'run in the background (pid and log file in the home directory)')
    .option('--stop', 'stop the background server of this home')
    .action(
      async (o: { port: number; host: string; publicUrl?: string[]; longPoll: number; daemon?: boolean; stop?: boolean }, cmd: Command) =>
        (await import('./commands/serve')).serveCommand(ctx(cmd), o),
    );

  const config = program
    .command('config')
    .description('peer configuration (relays are LEARN records; the app URL is in <home>/config.json)');
  const relay = config.command('relay').description('store-and-forward relays');
  relay
    .command('set <url>')
    .description('use <url> as the relay for one peer or for all (catch-all)')
    .option('--for-pair <scope>', '"all" or a peer DID', 'all')
    .action(async (url: string, o: { forPair: string }, cmd: Command) =>
      (await import('./commands/relay')).relaySetCommand(ctx(cmd), url, o),
    );
  relay
    .command('show')
    .description('list configured relays')
    .option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }, cmd: Command) => (await import('./commands/relay')).relayShowCommand(ctx(cmd), o));
  relay
    .command('status')
    .description('probe each relay’s /health (exit 1 if one is unreachable)')
    .option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }, cmd: Command) => (await import('./commands/relay')).relayStatusCommand(ctx(cmd), o));
  relay
    .command('clear')
    .description('disable the relay entry of one scope (writes a disabling LEARN record)')
    .requiredOption('--for-pair <scope>', '"all" or a peer DID')
    .action(async (o: { forPair: string }, cmd: Command) => (await import('./commands/relay')).relayClearCommand(ctx(cmd), o));

  const appUrl = config.command('app-url').description('the Syncropel app invite links open (https://…/, where you serve the built app)');
  appUrl
    .command('set <url>')
    .description('make invite links open <url>#pair=…')
    .action(async (url: string, _o: unknown, cmd: Command) =>
      (await import('./commands/app-url')).appUrlSetCommand(ctx(cmd), parseAppUrl(url, 'the app URL')),
    );
  appUrl
    .command('show')
    .description('print the app URL invites use, and where it comes from')
    .option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }, cmd: Command) => (await import('./commands/app-url')).appUrlShowCommand(ctx(cmd), o));
  appUrl
    .command('clear')
    .description('forget the configured app URL')
    .action(async (_o: unknown, cmd: Command) => (await import('./commands/app-url')).appUrlClearCommand(ctx(cmd)));

  const pair = program.command('pair').description('pair with another peer (works while it is offline)');
  pair
    .command('invite')
    .description('print an invite link and its QR code')
    .option('--thread <id>', 'share this thread (repeatable)', collect, [])
    .addOption(new Option('--ttl-days <days>', 'how long the invite is valid').default(7).argParser(parser(parseTtlDays)))
    .option('--no-qr', 'do not print the QR code')
    .option('--json', 'machine-readable output (link and payload)')
    .action(async (o: { thread: string[]; ttlDays: number; qr: boolean; json?: boolean }, cmd: Command) =>
      (await import('./commands/pair')).pairInviteCommand(ctx(cmd), o),
    );
  pair
    .command('accept <link>')
    .description('accept an invite link and send the reply')
    .action(async (link: string, _o: unknown, cmd: Command) => (await import('./commands/pair')).pairAcceptCommand(ctx(cmd), link));
  pair
    .command('list')
    .description('list pairs')
    .option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }, cmd: Command) => (await import('./commands/pair')).pairListCommand(ctx(cmd), o));
  pair
    .command('end <did-or-name>')
    .description('end a pair: nothing more is sent to it or accepted from it (it is told)')
    .action(async (who: string, _o: unknown, cmd: Command) => (await import('./commands/pair')).pairEndCommand(ctx(cmd), who));

  // `spl thread …`: more subcommands (share, unshare, …) attach to this group.
  const thread = program.command('thread').description('threads: titles, records, who they are shared with');
  thread
    .command('list')
    .description('list threads: ID, title, record count, last note, shared with')
    .option('--all', 'include the protocol’s own threads (config, pairing)')
    .option('--json', 'machine-readable output')
    .action(async (o: { all?: boolean; json?: boolean }, cmd: Command) =>
      (await import('./commands/thread')).threadListCommand(ctx(cmd), o),
    );
  thread
    .command('show <id>')
    .description('a thread’s title, who it is shared with, and its records in time order')
    .option('--json', 'machine-readable output')
    .action(async (id: string, o: { json?: boolean }, cmd: Command) =>
      (await import('./commands/thread')).threadShowCommand(ctx(cmd), parseThread(id), o),
    );
  thread
    .command('share <thread>')
    .description('share a thread with a pair: it gets the history and your notes there, and its notes there are accepted')
    .requiredOption('--with <did-or-name>', 'the pair (DID or name)')
    .action(async (t: string, o: { with: string }, cmd: Command) =>
      (await import('./commands/share')).threadShareCommand(ctx(cmd), parseThread(t), o),
    );
  thread
    .command('unshare <thread>')
    .description('stop sharing a thread with a pair')
    .requiredOption('--with <did-or-name>', 'the pair (DID or name)')
    .action(async (t: string, o: { with: string }, cmd: Command) =>
      (await import('./commands/share')).threadUnshareCommand(ctx(cmd), parseThread(t), o),
    );
  thread
    .command('shares')
    .description('threads your pairs offered that wait for your answer')
    .option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }, cmd: Command) => (await import('./commands/share')).threadSharesCommand(ctx(cmd), o));
  thread
    .command('accept <thread>')
    .description('accept a thread a pair offered: share it back and fetch its history')
    .action(async (t: string, _o: unknown, cmd: Command) =>
      (await import('./commands/share')).threadAcceptCommand(ctx(cmd), parseThread(t)),
    );

  program
    .command('emit')
    .description('write a note on a thread (sent to every pair sharing it)')
    .requiredOption('--thread <id>', 'thread ID (th_…)')
    .option('--text <note>', 'the note ("-" reads it from stdin)')
    .option('--file <path>', 'read the note from a file')
    .option('--no-send', 'only queue it (spl serve delivers it)')
    .action(async (o: { thread: string; text?: string; file?: string; send: boolean }, cmd: Command) =>
      (await import('./commands/records')).emitCommand(ctx(cmd), o),
    );

  program
    .command('records')
    .description('list the records of a thread in time order (written and arrival times)')
    .requiredOption('--thread <id>', 'thread ID (th_…)')
    .option('--json', 'machine-readable output')
    .action(async (o: { thread: string; json?: boolean }, cmd: Command) =>
      (await import('./commands/records')).recordsCommand(ctx(cmd), o),
    );

  const sync = program.command('fleet').description('federation state').command('sync').description('delivery and receive state');
  sync
    .command('status')
    .description('per pair: delivery path and last error; per relay: last receive and backlog')
    .option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }, cmd: Command) => (await import('./commands/status')).syncStatusCommand(ctx(cmd), o));
  sync
    .command('flush')
    .description('retry every pending envelope now')
    .option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }, cmd: Command) => (await import('./commands/status')).syncFlushCommand(ctx(cmd), o));

  program
    .command('doctor')
    .description('check identity, relays, receive task and outbox (exit 0 pass, 1 warn, 2 fail)')
    .option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }, cmd: Command) => setExit(await (await import('./commands/status')).doctorCommand(ctx(cmd), o)));

  return program;
}

/** Runs `spl` with `args` (without node and script); resolves the exit code. */
export async function runCli(args: readonly string[], io: CliIo): Promise<number> {
  let exitCode = 0;
  const program = buildProgram(io, (c) => (exitCode = c));
  try {
    await program.parseAsync([...args], { from: 'user' });
    return exitCode;
  } catch (e) {
    if (e instanceof CommanderError) {
      // Help and version are "errors" under exitOverride; commander already printed its message.
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.help' || e.code === 'commander.version') return 0;
      if (e.code === 'commander.executeSubCommandAsync') return e.exitCode;
      return 2;
    }
    io.err(`error: ${oneLine(e)}${peerErrorHint(e)}\n`);
    return e instanceof CliError ? e.exitCode : 1;
  }
}
