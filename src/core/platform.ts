/**
 * The platform facilities core uses, typed here: core compiles without DOM or Node types
 * (tsconfig.core.json), so it names only what it needs from WebCrypto, which browsers,
 * workers and Node ≥ 20 all provide as `globalThis.crypto`.
 */

/** An imported key; core only hands it back to the platform. */
export interface PlatformKey {
  readonly type: string;
}

type Bytes = Uint8Array<ArrayBuffer>;

export interface PlatformSubtle {
  importKey(
    format: 'raw' | 'pkcs8',
    keyData: Bytes,
    algorithm: { readonly name: string },
    extractable: boolean,
    usages: string[],
  ): Promise<PlatformKey>;
  sign(algorithm: { readonly name: string }, key: PlatformKey, data: Bytes): Promise<ArrayBuffer>;
  verify(algorithm: { readonly name: string }, key: PlatformKey, signature: Bytes, data: Bytes): Promise<boolean>;
  deriveBits(algorithm: { readonly name: string; readonly public: PlatformKey }, key: PlatformKey, length: number): Promise<ArrayBuffer>;
  digest(algorithm: 'SHA-256', data: Bytes): Promise<ArrayBuffer>;
}

interface PlatformCrypto {
  readonly subtle?: PlatformSubtle;
  getRandomValues(array: Uint8Array): Uint8Array;
}

/** WebCrypto, or undefined where there is none (the pure-JS paths take over). */
export const platformCrypto = (): PlatformCrypto | undefined => (globalThis as { crypto?: PlatformCrypto }).crypto;
