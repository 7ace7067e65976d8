/**
 * Errors the engine throws for a request it cannot carry out: a stable `code` for callers (the
 * CLI maps codes to exit statuses and hints, the app to screens) and a sentence for people that
 * names what was wrong in the engine's own words, never a CLI flag or a screen.
 */
export type PeerErrorCode =
  /** No identity on this device yet. */
  | 'no_identity'
  /** This device already has one. */
  | 'identity_exists'
  /** An argument is malformed: a name, URL, DID, thread ID, note. */
  | 'invalid_input'
  /** A thread that only the engine writes (§8). */
  | 'reserved_thread'
  /** No pair with that DID, or no pending share of that thread. */
  | 'not_found'
  /** The pair has ended, or is still waiting for the inviter's confirmation (§9). */
  | 'pair_state'
  /** Nothing to route through: invites need a relay or a direct URL. */
  | 'no_route'
  /** An invite that does not parse or verify, or is our own. */
  | 'invalid_invite'
  /** A backup that does not decrypt, verify or belong to its key. */
  | 'invalid_backup'
  /** Other writers of the same store kept taking the next clock. */
  | 'contention';

export class PeerError extends Error {
  override readonly name = 'PeerError';
  constructor(
    readonly code: PeerErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export const isPeerError = (e: unknown, code?: PeerErrorCode): e is PeerError =>
  e instanceof PeerError && (code === undefined || e.code === code);
