import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { bufferSource, toHex, utf8 } from './bytes';
import { platformCrypto } from './platform';

export const sha256 = (data: Uint8Array): Uint8Array => nobleSha256(data);

/** 64 lowercase hex characters, the form every ID in the protocol takes. */
export const sha256Hex = (data: Uint8Array | string): string => toHex(nobleSha256(typeof data === 'string' ? utf8(data) : data));

export const HEX_ID = /^[0-9a-f]{64}$/;

/**
 * sha256Hex on the platform's native SHA-256 where there is one (WebCrypto): a receiver hashes
 * every record it verifies, and in browsers the native digest costs a fraction of the JS one.
 */
export async function sha256HexAsync(data: Uint8Array): Promise<string> {
  const subtle = platformCrypto()?.subtle;
  if (subtle) {
    try {
      return toHex(new Uint8Array(await subtle.digest('SHA-256', bufferSource(data))));
    } catch {
      // no native digest after all: the JS one below gives the same answer
    }
  }
  return sha256Hex(data);
}
