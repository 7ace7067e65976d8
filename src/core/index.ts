/** The isomorphic protocol core: runs unchanged in browsers, workers and Node. */
export * from './result';
export * from './bytes';
export * from './canonical';
export * from './json';
export * from './hash';
export * from './base58';
export * from './did';
export * from './ed25519';
export * from './record';
export * from './envelope';
export * from './mailbox-auth';
export * from './receipt';
export * from './invite';
export * from './keyfile';
