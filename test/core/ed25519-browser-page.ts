/** What the in-page Ed25519 check (./ed25519-browser-entry.ts) and its Node driver agree on. */
export interface HexCase {
  readonly pk: string;
  readonly msg: string;
  readonly sig: string;
}

export interface PageVerdict {
  readonly webcrypto: boolean;
  readonly noble: boolean;
  /** The platform's own subtle.verify, unwrapped (or the name of what it threw). */
  readonly bare: boolean | string;
}

export interface Ed25519Page {
  checkEd25519?: (cases: readonly HexCase[]) => Promise<{ backend: 'webcrypto' | 'noble'; verdicts: PageVerdict[] }>;
}
