/**
 * Bundled by ./ed25519.chromium.test.ts into a page: both Ed25519 backends, and the platform's
 * bare WebCrypto for comparison, on cases handed in as hex.
 */
import { fromHex } from '../../src/core/bytes';
import { ed25519Backend, verifyWith } from '../../src/core/ed25519';
import type { Ed25519Page, HexCase, PageVerdict } from './ed25519-browser-page';

const hex = (s: string): Uint8Array<ArrayBuffer> => {
  const b = fromHex(s);
  if (!b) throw new Error(`not hex: ${s.slice(0, 40)}`);
  return b as Uint8Array<ArrayBuffer>;
};

async function bare(c: HexCase): Promise<boolean | string> {
  try {
    const key = await crypto.subtle.importKey('raw', hex(c.pk), { name: 'Ed25519' }, false, ['verify']);
    return await crypto.subtle.verify({ name: 'Ed25519' }, key, hex(c.sig), hex(c.msg));
  } catch (e) {
    return e instanceof Error ? e.name : String(e);
  }
}

(globalThis as Ed25519Page).checkEd25519 = async (cases) => {
  const verdicts: PageVerdict[] = [];
  for (const c of cases) {
    verdicts.push({
      webcrypto: await verifyWith('webcrypto', hex(c.sig), hex(c.msg), hex(c.pk)),
      noble: await verifyWith('noble', hex(c.sig), hex(c.msg), hex(c.pk)),
      bare: await bare(c),
    });
  }
  return { backend: await ed25519Backend(), verdicts };
};
