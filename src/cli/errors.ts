import { isPeerError, type PeerErrorCode } from '../sync/errors';

/** CLI failures carry their exit code: 2 for usage errors, 1 for everything else (issue: one line on stderr). */
export class CliError extends Error {
  override readonly name: string = 'CliError';
  constructor(
    message: string,
    readonly exitCode: number = 1,
  ) {
    super(message);
  }
}

/** Bad input on the command line (an argument or option value): exit 2. */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, 2);
  }
}

/** The home has no identity yet: most commands refuse (exit 1); `spl doctor` reports it as a failure. */
export class NoIdentityError extends CliError {
  override readonly name = 'NoIdentityError';
}

/** The command that gets past an engine error, by its code: the engine names no CLI commands. */
const PEER_ERROR_HINTS: Partial<Record<PeerErrorCode, string>> = {
  no_identity: 'spl init',
  no_route: 'spl config relay set <url> --for-pair all',
};

export function peerErrorHint(e: unknown): string {
  const hint = isPeerError(e) ? PEER_ERROR_HINTS[e.code] : undefined;
  return hint ? ` (${hint})` : '';
}

/** The first line of an error's message, for the one-line stderr report. */
export function oneLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return (msg.split('\n')[0] ?? '').trim() || 'unknown error';
}
