/**
 * Single use of mailbox-auth signatures (PROTOCOL.md §6 replay rule) without an fsync per receive.
 *
 * Measured before (issue 14): every receive waited for a durable replay-cache write, and receive
 * p50 was ~130 ms under 50 concurrent receivers. Now a signature is claimed in memory and its
 * durable record joins the next write batch without being awaited (an ack's record lands in the
 * ack's own transaction, queued in the same turn). The rule that keeps this sound across a crash:
 *
 * - A signature whose ts is in the future (ts > now: the client's clock is ahead) is claimed
 *   durably before the request proceeds, as before: a crash cannot lose it.
 * - Otherwise ts ≤ now. If this run crashes before the lazy record commits, the signature had
 *   ts ≤ its use < the crash < the next run's start. So a run that starts after a crash refuses
 *   every signature with ts < its start time (the *replay floor*; persisted, floors only rise,
 *   so a later clean restart keeps refusing them while they are inside the skew window).
 * - A run "started after a crash" is one that finds another run still marked running in the
 *   database (runs mark themselves at start, unmark at a clean close after their last commit).
 *   Two relays sharing a file count each other as running: conservative, never unsound.
 * - Signatures at or above the floor that an earlier run used were claimed durably
 *   (future-dated) or by a run that closed cleanly (every lazy record committed): the store's
 *   table answers for them, and for those other relays sharing the file have committed. It is
 *   read (an index lookup on the main thread) before a lazy claim.
 *
 * The cost of the floor: after a crash, a client whose clock is d behind the relay's gets 401 for
 * d (at most the 120 s skew window) and signs again. Assumes the relay's clock does not step back
 * across a restart by more than the time the restart takes.
 *
 * Stores without `openRun` (memory, PostgreSQL) keep the durable claim on every request.
 */
import type { MailboxStore } from './storage/store';

export class ReplayGuard {
  /** Signatures claimed by this run, with the instant they stop mattering. */
  private readonly used = new Map<string, number>();
  private floor = -Infinity;
  private lazy = false;

  constructor(
    private readonly store: MailboxStore,
    private readonly onLazyError: (e: unknown) => void,
  ) {}

  /**
   * Marks the run started in the store and reads the floor. Without store support, or when the
   * store cannot commit (the error is returned), every claim stays durable.
   */
  async start(now: number): Promise<Error | undefined> {
    if (!this.store.openRun) return undefined;
    try {
      this.floor = await this.store.openRun(now);
      this.lazy = true;
      return undefined;
    } catch (e) {
      return e instanceof Error ? e : new Error(String(e));
    }
  }

  /** The replay floor: signatures with ts below it are refused (see the module comment). */
  get replayFloor(): number {
    return this.floor;
  }

  /**
   * 'fresh' when the signature (with timestamp `ts`) has not been used and may proceed; it is then
   * claimed until `expiresAt`. 'used' or 'before_floor' otherwise.
   */
  async claim(sig: string, ts: number, expiresAt: number, now: number): Promise<'fresh' | 'used' | 'before_floor'> {
    if (this.used.has(sig)) return 'used';
    if (ts < this.floor) return 'before_floor';
    this.used.set(sig, expiresAt); // before any await: a concurrent second use is refused at once
    if (!this.lazy || ts > now || !this.store.signatureClaimed) {
      return (await this.store.claimSignature(sig, expiresAt)) ? 'fresh' : 'used';
    }
    if (await this.store.signatureClaimed(sig)) return 'used';
    this.store.claimSignature(sig, expiresAt).catch(this.onLazyError);
    return 'fresh';
  }

  /** Forgets signatures whose ts has left the skew window (the skew check refuses them anyway). */
  prune(now: number): void {
    for (const [sig, expiresAt] of this.used) if (expiresAt <= now) this.used.delete(sig);
  }
}
