/**
 * The private metrics listener (`--metrics-listen`, PROTOCOL.md §5 "Metrics"): `GET /metrics` only,
 * on an address operators keep off the public network, so per-DID series never face the internet.
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { guardConnections } from './connections';
import { sendError } from './http';
import { hostPort } from './origins';

export function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** Starts the listener; rejects when it cannot bind. */
export async function startMetricsListener(
  address: { readonly host: string; readonly port: number },
  render: (res: ServerResponse) => Promise<void>,
  logger: Logger,
): Promise<{ readonly server: Server; readonly url: string }> {
  const server = createServer({ headersTimeout: 10_000, requestTimeout: 10_000, keepAliveTimeout: 5_000 }, (req, res) => {
    req.resume();
    if ((req.url ?? '/').split('?', 1)[0] !== '/metrics') return sendError(res, 404, 'not_found', 'this listener serves GET /metrics only');
    if (req.method !== 'GET') return sendError(res, 405, 'method_not_allowed', '/metrics accepts GET', { Allow: 'GET' });
    render(res).catch((err: unknown) => {
      logger.error({ err }, 'metrics scrape failed');
      sendError(res, 500, 'internal_error', 'the relay failed to render its metrics');
    });
  });
  guardConnections(server, { maxConnections: 64, maxConnectionsPerClient: 0 }, () => undefined);
  await listen(server, address.port, address.host);
  const m = server.address() as AddressInfo;
  return { server, url: `http://${hostPort(m.address, m.port)}` };
}
