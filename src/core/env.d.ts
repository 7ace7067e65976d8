// Globals core relies on beyond ECMAScript, present in browsers, workers and Node ≥ 20. Declared
// for tsconfig.core.json only (no DOM, no Node types); other programs get them from their libs.
declare class TextEncoder {
  encode(input?: string): Uint8Array<ArrayBuffer>;
}
declare class TextDecoder {
  constructor(label?: string, options?: { fatal?: boolean });
  decode(input?: Uint8Array): string;
}
declare class URL {
  constructor(url: string, base?: string);
  readonly protocol: string;
  readonly username: string;
  readonly password: string;
}
