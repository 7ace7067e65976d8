/** In-process wake-ups for long-polling receivers (PROTOCOL.md §5 receive `wait`). */

type Waiter = () => void;

export class MailboxNotifier {
  private readonly waiters = new Map<string, Set<Waiter>>();

  /** Calls `wake` once, at the next deposit for `did` or at `wakeAll`; returns an unsubscribe. */
  subscribe(did: string, wake: Waiter): () => void {
    let set = this.waiters.get(did);
    if (!set) {
      set = new Set();
      this.waiters.set(did, set);
    }
    set.add(wake);
    return () => {
      const s = this.waiters.get(did);
      if (!s) return;
      s.delete(wake);
      if (s.size === 0) this.waiters.delete(did);
    };
  }

  /** Whether a long-poll for `did` is waiting (its owner is awake: no push wake needed, §5.2). */
  isWaiting(did: string): boolean {
    return this.waiters.has(did);
  }

  notify(did: string): void {
    const set = this.waiters.get(did);
    if (!set) return;
    this.waiters.delete(did);
    for (const wake of set) wake();
  }

  /** Shutdown: every pending long-poll answers now. */
  wakeAll(): void {
    const all = [...this.waiters.values()];
    this.waiters.clear();
    for (const set of all) for (const wake of set) wake();
  }

  get size(): number {
    let n = 0;
    for (const s of this.waiters.values()) n += s.size;
    return n;
  }
}
