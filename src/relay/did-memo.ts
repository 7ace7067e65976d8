/**
 * Which mailbox DIDs carry a valid key (PROTOCOL.md §5: mailboxes exist only for valid did:key
 * DIDs). Checking a key costs a square root and a multiplication by L, ~1 ms in pure JS, and core
 * remembers only 1,024 answers (a batch of records shares few actors). A relay serves many more
 * receivers: measured with deposits spread over 10,000 of them (`npm run bench:scale`), the check
 * held the relay to ~500 deposits/s. So the relay remembers the last 65,536 valid DIDs (~10 MB);
 * invalid ones are not remembered (a flood of them costs what it did before, and cannot evict
 * more than a flood of valid ones could).
 */
import { publicKeyFromDid, type DidErrorCode, type Result } from '../core';

export class ValidDidMemo {
  /** Insertion order is eviction order; a hit moves the DID to the end. */
  private readonly valid = new Set<string>();

  constructor(private readonly max = 65_536) {}

  check(did: string): Result<true, DidErrorCode> {
    if (this.valid.delete(did)) {
      this.valid.add(did);
      return { ok: true, value: true };
    }
    const key = publicKeyFromDid(did);
    if (!key.ok) return key;
    if (this.valid.size >= this.max) this.valid.delete(this.valid.values().next().value!);
    this.valid.add(did);
    return { ok: true, value: true };
  }
}
