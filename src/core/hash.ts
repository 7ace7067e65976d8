import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { toHex, utf8 } from './bytes';

export const sha256 = (data: Uint8Array): Uint8Array => nobleSha256(data);

/** 64 lowercase hex characters, the form every ID in the protocol takes. */
export const sha256Hex = (data: Uint8Array | string): string =>
  toHex(nobleSha256(typeof data === 'string' ? utf8(data) : data));

export const HEX_ID = /^[0-9a-f]{64}$/;
