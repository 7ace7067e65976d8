import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** The shared wire contract and vectors sit beside the repository. */
export const SHARED = process.env.SYNCROPEL_SHARED ?? join(ROOT, '..', 'shared');
export const VECTORS = join(SHARED, 'vectors');
