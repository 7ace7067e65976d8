/**
 * Helpers for tests that run several relay processes on one PostgreSQL database: draining a
 * mailbox through any of them, and a signed request sent with a chosen Host (the origin a load
 * balancer would present to every relay alike).
 */
import { request } from 'node:http';
import { signMailboxRequest, type Envelope, type Signer } from '../src/core/index';
import { mailboxPath, signedAck, signedReceive } from './relay-process';

export interface ReceiveBody {
  envelopes: Envelope[];
  remaining: number;
}

/** Receives and acks until the mailbox is empty, round-robin over `urls`; every ID served, in order served. */
export async function drain(urls: readonly string[], did: string, signer: Signer): Promise<string[]> {
  const served: string[] = [];
  for (let round = 0; ; round++) {
    const url = urls[round % urls.length]!;
    const res = await signedReceive(url, did, signer, { limit: 100 });
    if (res.status !== 200) throw new Error(`receive answered ${res.status}: ${await res.text()}`);
    const body = (await res.json()) as ReceiveBody;
    if (body.envelopes.length === 0) return served;
    const ids = body.envelopes.map((e) => e.id);
    served.push(...ids);
    const ack = await signedAck(urls[(round + 1) % urls.length]!, did, signer, ids);
    if (ack.status !== 200) throw new Error(`ack answered ${ack.status}`);
  }
}

/** A raw GET with an explicit Host header and Authorization (replaying one signed request). */
export function getWithHost(url: string, pathAndQuery: string, host: string, authorization: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = request({ host: u.hostname, port: u.port, path: pathAndQuery, headers: { host, authorization } }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode ?? 0));
    });
    req.once('error', reject);
    req.end();
  });
}

export const signReceive = (host: string, did: string, signer: Signer): Promise<{ pathAndQuery: string; authorization: string }> => {
  const pathAndQuery = `${mailboxPath(did)}/receive?limit=10`;
  return signMailboxRequest({ method: 'GET', host, pathAndQuery, body: '' }, signer).then((authorization) => ({
    pathAndQuery,
    authorization,
  }));
};

export async function longPollsWaiting(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('relay_long_polls_waiting '));
  return line === undefined ? -1 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** One implementation for both (./relay-process.ts). */
export { signedPutTokens } from './relay-process';
