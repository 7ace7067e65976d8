/**
 * A Web Push service stand-in (RFC 8030) on loopback over http, for tests: it hands out
 * subscriptions with real P-256 keys, and for every push it checks the VAPID JWT signature
 * (RFC 8292, ES256 under the `k=` key) and decrypts the aes128gcm body (RFC 8291 + RFC 8188)
 * with the subscription's private key — what a real push service and browser do between them.
 */
import { createDecipheriv, createECDH, createPublicKey, hkdfSync, randomBytes, verify as verifySignature } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface StandInSubscription {
  readonly endpoint: string;
  readonly keys: { readonly p256dh: string; readonly auth: string };
  /** What the stand-in answers pushes to it: 201 by default; 410 makes it "gone". */
  status: number;
}

export interface ReceivedPush {
  readonly endpoint: string;
  readonly at: number;
  readonly headers: Record<string, string | undefined>;
  /** Decrypted payload text. */
  readonly payload: string;
  readonly jwt: { readonly aud: string; readonly exp: number; readonly sub: string };
  /** The `k=` key of the Authorization header (the relay's VAPID public key). */
  readonly vapidKey: string;
}

interface Sub extends StandInSubscription {
  readonly ecdh: ReturnType<typeof createECDH>;
  readonly authSecret: Buffer;
}

export interface PushServiceStandIn {
  readonly origin: string;
  readonly pushes: ReceivedPush[];
  /** Requests refused by the stand-in's checks (bad JWT, bad encryption), with the reason. */
  readonly rejected: string[];
  subscribe(): StandInSubscription;
  /** Hands an externally created subscription's private key to the stand-in (e.g. a browser's is unknown: pushes to it are recorded undecrypted). */
  waitForPushes(n: number, timeoutMs?: number): Promise<ReceivedPush[]>;
  close(): Promise<void>;
}

const b64u = (b: Buffer): string => b.toString('base64url');

function verifyVapid(
  authorization: string | undefined,
  origin: string,
): { ok: true; jwt: ReceivedPush['jwt']; key: string } | { ok: false; reason: string } {
  const m = /^vapid t=([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+), k=([A-Za-z0-9_-]+)$/.exec(authorization ?? '');
  if (!m) return { ok: false, reason: 'Authorization is not "vapid t=<jwt>, k=<key>"' };
  const [h, p, s] = m[1]!.split('.') as [string, string, string];
  const key = Buffer.from(m[2]!, 'base64url');
  if (key.length !== 65 || key[0] !== 4) return { ok: false, reason: 'k is not an uncompressed P-256 point' };
  const header = JSON.parse(Buffer.from(h, 'base64url').toString()) as { alg?: string };
  if (header.alg !== 'ES256') return { ok: false, reason: `JWT alg ${header.alg}` };
  const publicKey = createPublicKey({
    key: { kty: 'EC', crv: 'P-256', x: b64u(key.subarray(1, 33)), y: b64u(key.subarray(33)) },
    format: 'jwk',
  });
  const good = verifySignature(
    'sha256',
    Buffer.from(`${h}.${p}`),
    { key: publicKey, dsaEncoding: 'ieee-p1363' },
    Buffer.from(s, 'base64url'),
  );
  if (!good) return { ok: false, reason: 'JWT signature does not verify under k' };
  const claims = JSON.parse(Buffer.from(p, 'base64url').toString()) as ReceivedPush['jwt'];
  if (claims.aud !== origin) return { ok: false, reason: `JWT aud ${claims.aud} is not ${origin}` };
  const now = Date.now() / 1000;
  if (!(claims.exp > now && claims.exp <= now + 24 * 3600 + 60)) return { ok: false, reason: 'JWT exp not within 24 h' };
  return { ok: true, jwt: claims, key: m[2]! };
}

/** RFC 8291 §3.4 + RFC 8188: one record, padding delimiter 2. */
export function decryptAes128gcm(body: Buffer, ecdh: ReturnType<typeof createECDH>, authSecret: Buffer): string {
  const salt = body.subarray(0, 16);
  const idlen = body[20]!;
  const asPublic = body.subarray(21, 21 + idlen);
  const ciphertext = body.subarray(21 + idlen);
  const uaPublic = ecdh.getPublicKey();
  const ecdhSecret = ecdh.computeSecret(asPublic);
  const keyInfo = Buffer.concat([Buffer.from('WebPush: info\0'), uaPublic, asPublic]);
  const ikm = Buffer.from(hkdfSync('sha256', ecdhSecret, authSecret, keyInfo, 32));
  const cek = Buffer.from(hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: aes128gcm\0'), 16));
  const nonce = Buffer.from(hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: nonce\0'), 12));
  const decipher = createDecipheriv('aes-128-gcm', cek, nonce);
  decipher.setAuthTag(ciphertext.subarray(ciphertext.length - 16));
  const padded = Buffer.concat([decipher.update(ciphertext.subarray(0, ciphertext.length - 16)), decipher.final()]);
  let end = padded.length - 1;
  while (end >= 0 && padded[end] === 0) end--;
  if (padded[end] !== 2) throw new Error('no last-record padding delimiter');
  return padded.subarray(0, end).toString('utf8');
}

function readAll(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', reject);
  });
}

export async function startPushServiceStandIn(): Promise<PushServiceStandIn> {
  const subs = new Map<string, Sub>();
  const pushes: ReceivedPush[] = [];
  const rejected: string[] = [];
  const waiters = new Set<() => void>();
  let origin = '';
  const server: Server = createServer((req, res) => {
    void readAll(req).then((body) => {
      const endpoint = origin + (req.url ?? '');
      const sub = subs.get(endpoint);
      if (req.method !== 'POST' || !sub) {
        res.writeHead(404).end();
        return;
      }
      const reject = (reason: string): void => {
        rejected.push(reason);
        res.writeHead(400).end(reason);
        for (const w of waiters) w();
      };
      const vapid = verifyVapid(req.headers.authorization, origin);
      if (!vapid.ok) return reject(vapid.reason);
      if (req.headers['content-encoding'] !== 'aes128gcm') return reject(`Content-Encoding ${req.headers['content-encoding']}`);
      let payload: string;
      try {
        payload = decryptAes128gcm(body, sub.ecdh, sub.authSecret);
      } catch (e) {
        return reject(`cannot decrypt: ${(e as Error).message}`);
      }
      pushes.push({
        endpoint,
        at: Date.now(),
        headers: {
          ttl: req.headers.ttl as string | undefined,
          topic: req.headers.topic as string | undefined,
          urgency: req.headers.urgency as string | undefined,
        },
        payload,
        jwt: vapid.jwt,
        vapidKey: vapid.key,
      });
      res.writeHead(sub.status, sub.status === 201 ? { Location: endpoint } : {}).end();
      for (const w of waiters) w();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    origin,
    pushes,
    rejected,
    subscribe() {
      const ecdh = createECDH('prime256v1');
      ecdh.generateKeys();
      const authSecret = randomBytes(16);
      const sub: Sub = {
        endpoint: `${origin}/push/${randomBytes(12).toString('hex')}`,
        keys: { p256dh: b64u(ecdh.getPublicKey()), auth: b64u(authSecret) },
        status: 201,
        ecdh,
        authSecret,
      };
      subs.set(sub.endpoint, sub);
      return sub;
    },
    waitForPushes(n, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          if (rejected.length > 0) finish(new Error(`the stand-in refused a push: ${rejected.join('; ')}`));
          else if (pushes.length >= n) finish();
        };
        const finish = (err?: Error): void => {
          clearTimeout(timer);
          waiters.delete(check);
          if (err) reject(err);
          else resolve([...pushes]);
        };
        const timer = setTimeout(() => finish(new Error(`expected ${n} pushes within ${timeoutMs} ms, got ${pushes.length}`)), timeoutMs);
        waiters.add(check);
        check();
      });
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
