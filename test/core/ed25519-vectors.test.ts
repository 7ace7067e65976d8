/**
 * The published Ed25519 edge cases against BOTH backends (PROTOCOL.md §2): each backend is
 * forced explicitly, so a platform without WebCrypto Ed25519 fails here rather than skipping.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { didFromPublicKey, fromHex, publicKeyFromDid, verifyWith, type Ed25519Backend } from '../../src/core';
import { VECTORS } from '../../support/paths';

const BACKENDS: readonly Ed25519Backend[] = ['webcrypto', 'noble'];
const hex = (s: string): Uint8Array => {
  const b = fromHex(s);
  if (!b) throw new Error(`vector field is not hex: ${s.slice(0, 40)}`);
  return b;
};

interface WycheproofCase {
  tcId: number;
  comment: string;
  flags: string[];
  msg: string;
  sig: string;
  result: 'valid' | 'invalid' | 'acceptable';
}
interface WycheproofFile {
  numberOfTests: number;
  testGroups: { publicKey: { pk: string }; tests: WycheproofCase[] }[];
}

describe('Wycheproof ed25519_test.json (shared/vectors/ed25519)', () => {
  const file = JSON.parse(readFileSync(join(VECTORS, 'ed25519', 'wycheproof_ed25519_test.json'), 'utf8')) as WycheproofFile;
  const cases = file.testGroups.flatMap((g) => g.tests.map((t) => ({ ...t, pk: g.publicKey.pk })));

  it('holds every case the file announces, each valid or invalid', () => {
    expect(cases.length).toBe(file.numberOfTests);
    expect(cases.every((c) => c.result === 'valid' || c.result === 'invalid')).toBe(true);
    expect(cases.filter((c) => c.result === 'valid').length).toBeGreaterThan(0);
  });

  for (const backend of BACKENDS) {
    it(`${backend}: valid cases verify and invalid ones do not`, async () => {
      const wrong: string[] = [];
      for (const c of cases) {
        const got = await verifyWith(backend, hex(c.sig), hex(c.msg), hex(c.pk));
        if (got !== (c.result === 'valid'))
          wrong.push(`tcId ${c.tcId} (${c.comment || c.flags.join(',')}): expected ${c.result}, verify gave ${got}`);
      }
      expect(wrong).toEqual([]);
    });
  }
});

interface SpeccheckCase {
  message: string;
  pub_key: string;
  signature: string;
}

// Why §2 rejects each case (shared/vectors/README.md): the key's own verdict, where the key decides.
const SPECCHECK_KEY_PROBLEM: readonly (RegExp | undefined)[] = [
  /small order/, // 0: small-order A and R, S = 0
  /small order/, // 1: small-order A, mixed-order R
  /outside the prime-order subgroup/, // 2: mixed-order A, small-order R
  /outside the prime-order subgroup/, // 3: mixed-order A; passes cofactored and cofactorless equations
  /outside the prime-order subgroup/, // 4: mixed-order A; passes the cofactored equation only
  /outside the prime-order subgroup/, // 5: same, with k pre-reduced
  undefined, // 6: valid A, S ≥ L
  undefined, // 7: valid A, S ≫ L
  /outside the prime-order subgroup/, // 8: mixed-order A, non-canonical R
  /outside the prime-order subgroup/, // 9: same
  /not canonically encoded/, // 10: non-canonical A
  /not canonically encoded/, // 11: same
];

describe('ed25519-speccheck cases (shared/vectors/ed25519)', () => {
  const cases = JSON.parse(readFileSync(join(VECTORS, 'ed25519', 'speccheck_cases.json'), 'utf8')) as SpeccheckCase[];

  it('has the 12 published cases', () => expect(cases.length).toBe(SPECCHECK_KEY_PROBLEM.length));

  for (const backend of BACKENDS) {
    it(`${backend}: rejects every case`, async () => {
      const accepted: string[] = [];
      for (const [i, c] of cases.entries()) {
        if (await verifyWith(backend, hex(c.signature), hex(c.message), hex(c.pub_key))) accepted.push(`case ${i}`);
      }
      expect(accepted).toEqual([]);
    });
  }

  it('refuses the DID of every invalid key, naming why, and accepts the valid ones', () => {
    const verdicts = cases.map((c, i) => {
      const r = publicKeyFromDid(didFromPublicKey(hex(c.pub_key)));
      return `case ${i}: ${r.ok ? 'valid' : `${r.error.code}: ${r.error.message}`}`;
    });
    SPECCHECK_KEY_PROBLEM.forEach((problem, i) => {
      if (problem) {
        expect(verdicts[i]).toMatch(new RegExp(`^case ${i}: invalid_did_key: .*${problem.source}`));
      } else {
        expect(verdicts[i]).toBe(`case ${i}: valid`);
      }
    });
  });

  it('where the key is valid, S ≥ L alone rejects: S − L would have verified', async () => {
    // Cases 6–7 are honest signatures with L (or a multiple) added to S; reducing S gives one
    // that verifies, so the rejection comes from the S < L rule and nothing else.
    const L = (1n << 252n) + 27742317777372353535851937790883648493n;
    for (const i of [6, 7]) {
      const c = cases[i]!;
      const sig = hex(c.signature);
      const S = BigInt('0x' + Buffer.from(sig.subarray(32)).reverse().toString('hex'));
      expect(S >= L, `case ${i}: S ≥ L`).toBe(true);
      const reduced = Buffer.from((S % L).toString(16).padStart(64, '0'), 'hex').reverse();
      const fixed = Uint8Array.from([...sig.subarray(0, 32), ...reduced]);
      for (const backend of BACKENDS) {
        expect(await verifyWith(backend, fixed, hex(c.message), hex(c.pub_key)), `case ${i} with S mod L on ${backend}`).toBe(true);
      }
    }
  });
});
