/** Push wake pieces (PROTOCOL.md §5.2): address classes, the subscription parser (fuzzed), both subscription stores, the VAPID key file. */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { checkEndpoint, isPublicUnicast } from '../../src/relay/push/address';
import { parseSubscription } from '../../src/relay/push/handlers';
import { MemoryPushSubscriptionStore, SqlitePushSubscriptionStore } from '../../src/relay/push/subscriptions';
import { runPushSubscriptionStoreContract } from '../contracts/push-subscription-store';
import { vitestRegistrar } from '../contracts/vitest-registrar';
import { loadVapidKeys } from '../../src/relay/push/vapid-key';

const dir = mkdtempSync(join(tmpdir(), 'spl-push-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let subsSeq = 0;

describe('endpoint addresses', () => {
  it.each([
    ['8.8.8.8', true],
    ['142.250.74.138', true],
    ['2606:4700:4700::1111', true],
    ['::ffff:8.8.8.8', true],
    ['127.0.0.1', false],
    ['10.0.0.1', false],
    ['172.16.5.4', false],
    ['192.168.0.1', false],
    ['169.254.169.254', false],
    ['100.64.0.1', false],
    ['100.127.255.254', false],
    ['0.0.0.0', false],
    ['224.0.0.1', false],
    ['255.255.255.255', false],
    ['::', false],
    ['::1', false],
    ['fe80::1', false],
    ['fc00::1', false],
    ['fd12:3456::1', false],
    ['ff02::1', false],
    ['::ffff:127.0.0.1', false],
    ['::ffff:10.0.0.1', false],
    ['64:ff9b::a00:1', false],
    ['2002:a00:1::', false],
    ['2001:db8::1', false],
    ['not-an-ip', false],
  ])('%s public unicast: %s', (ip, expected) => {
    expect(isPublicUnicast(ip)).toBe(expected);
  });

  it('a name is refused when any of its addresses is not public (checked again before each send)', async () => {
    const answers: Record<string, { address: string; family: number }[]> = {
      'mixed.test': [
        { address: '8.8.8.8', family: 4 },
        { address: '10.0.0.1', family: 4 },
      ],
      'public.test': [{ address: '8.8.8.8', family: 4 }],
    };
    const resolve = (h: string): Promise<{ address: string; family: number }[]> => Promise.resolve(answers[h] ?? []);
    expect((await checkEndpoint('https://mixed.test/p', undefined, resolve)).ok).toBe(false);
    const ok = await checkEndpoint('https://public.test/p', undefined, resolve);
    expect(ok).toMatchObject({ ok: true, address: '8.8.8.8', family: 4 });
    expect((await checkEndpoint('https://nothing.test/p', undefined, resolve)).ok).toBe(false);
    expect((await checkEndpoint('http://public.test/p', undefined, resolve)).ok).toBe(false);
    expect((await checkEndpoint('https://user:pw@public.test/p', undefined, resolve)).ok).toBe(false);
    // The allowed test service: exact origin only.
    expect((await checkEndpoint('http://127.0.0.1:4000/p', 'http://127.0.0.1:4000', resolve)).ok).toBe(true);
    expect((await checkEndpoint('http://127.0.0.1:4001/p', 'http://127.0.0.1:4000', resolve)).ok).toBe(false);
  });
});

describe('parseSubscription', () => {
  const p256dh = Buffer.concat([Buffer.from([4]), Buffer.alloc(64, 7)]).toString('base64url');
  const auth = Buffer.alloc(16, 9).toString('base64url');

  it('takes a browser PushSubscription and names what is wrong otherwise', () => {
    expect(parseSubscription({ endpoint: 'https://push.example/x', expirationTime: null, keys: { p256dh, auth } })).toEqual({
      ok: true,
      value: { endpoint: 'https://push.example/x', p256dh, auth },
    });
    const message = (v: Record<string, unknown>): string => {
      const r = parseSubscription(v);
      return r.ok ? '' : r.message;
    };
    expect(message({ endpoint: 'https://push.example/x', keys: { p256dh: auth, auth } })).toContain('p256dh');
    expect(message({ endpoint: 'https://push.example/x', keys: { p256dh, auth: p256dh } })).toContain('auth');
    expect(message({ keys: { p256dh, auth } })).toContain('endpoint');
  });

  it('never throws on arbitrary JSON, and accepts only well-sized keys', () => {
    fc.assert(
      fc.property(
        fc.dictionary(
          fc.constantFrom('endpoint', 'keys', 'x'),
          fc.oneof(
            fc.jsonValue(),
            fc.record({ p256dh: fc.oneof(fc.string(), fc.constant(p256dh)), auth: fc.oneof(fc.string(), fc.constant(auth)) }),
          ),
        ),
        (value) => {
          const r = parseSubscription(value);
          if (r.ok) {
            expect(Buffer.from(r.value.p256dh, 'base64url').length).toBe(65);
            expect(Buffer.from(r.value.auth, 'base64url').length).toBe(16);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});

runPushSubscriptionStoreContract(vitestRegistrar, 'memory', () => Promise.resolve({ store: new MemoryPushSubscriptionStore() }), {
  persistent: false,
});
runPushSubscriptionStoreContract(
  vitestRegistrar,
  'sqlite',
  () => {
    const path = join(dir, `subs-${++subsSeq}.sqlite`);
    return Promise.resolve({
      store: new SqlitePushSubscriptionStore(path),
      reopen: () => Promise.resolve(new SqlitePushSubscriptionStore(path)),
    });
  },
  { persistent: true },
);

it('the VAPID key file is created with mode 0600 and reused', () => {
  const path = join(dir, 'keys', 'relay.sqlite.vapid.json');
  const first = loadVapidKeys(path);
  expect(statSync(path).mode & 0o777).toBe(0o600);
  expect(loadVapidKeys(path)).toEqual(first);
  expect(Buffer.from(first.publicKey, 'base64url').length).toBe(65);
  expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual({ public_key: first.publicKey, private_key: first.privateKey });
});
