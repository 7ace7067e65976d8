/** What a client gets when handling its request threw: the store's state decides, never a stack. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { sendError } from './http';
import { DatabaseRefusedError, isStoreUnavailable } from './storage/store-errors';

export function answerFailedRequest(err: unknown, req: IncomingMessage, res: ServerResponse, logger: Logger): void {
  if (isStoreUnavailable(err)) {
    // The database is down or restarting: nothing was committed, the client retries later.
    logger.warn({ err: { message: err.message }, method: req.method }, 'store unavailable');
    if (!res.headersSent) sendError(res, 503, 'unavailable', 'the relay cannot reach its database; retry later', { 'Retry-After': '1' });
    else res.destroy();
    return;
  }
  if (err instanceof DatabaseRefusedError) {
    if (!res.headersSent)
      sendError(res, 503, 'unavailable', 'the relay found its database damaged and serves nothing from it; its operator must restore it');
    else res.destroy();
    return;
  }
  logger.error({ err, method: req.method }, 'request failed');
  if (!res.headersSent) sendError(res, 500, 'internal_error', 'the relay failed to handle this request');
  else res.destroy();
}
