/** `spl pair invite | accept | list` (PROTOCOL.md §9). */
import QRCode from 'qrcode';
import type { CliContext } from '../context';
import { inviteAppUrl, withPeer } from '../context';
import { UsageError } from '../errors';
import { json } from '../format';
import { appUrlOfLink, updateHomeConfig } from '../home-config';
import { runningServer } from '../serve-state';

const DAY_MS = 86_400_000;

/** Printed when no app URL is known: the link is then a bare `syncropel:#pair=…` that opens nothing by itself. */
const NO_APP_URL_NOTE =
  'No app URL is set, so this link opens no app by itself: paste it (or the payload) into the app’s Pair screen,\n' +
  'or run spl pair accept on the other device. To get links that open your app, set its URL once:\n' +
  '  spl config app-url set https://<where your Syncropel app is served>/   (or --app-url, or $SPL_APP_URL)\n';

export interface InviteOptions {
  readonly thread: readonly string[];
  readonly ttlDays: number;
  readonly qr: boolean;
  readonly json?: boolean;
}

export async function pairInviteCommand(ctx: CliContext, opts: InviteOptions): Promise<void> {
  await withPeer(ctx, async ({ peer }) => {
    const ttlMs = Math.round(opts.ttlDays * DAY_MS);
    const { link, payload } = await peer.createInvite({ threads: opts.thread, ttlMs });
    const expiresAt = Date.now() + ttlMs;
    const app = inviteAppUrl(ctx);
    if (opts.json) {
      ctx.io.out(json({ link, payload, app_url: app?.url ?? null, threads: opts.thread, expires_at: expiresAt }));
      if (!app) ctx.io.err(NO_APP_URL_NOTE);
      return;
    }
    ctx.io.out(`Invite link (valid until ${new Date(expiresAt).toISOString()}):\n${link}\n`);
    if (opts.qr) ctx.io.out(`\n${await QRCode.toString(link, { type: 'terminal', small: true })}\n`);
    if (app) ctx.io.out(`Open it on the other device (scan the code), or there run: spl pair accept '<link>'\n`);
    else ctx.io.out(`\n${NO_APP_URL_NOTE}`);
  });
}

export async function pairAcceptCommand(ctx: CliContext, link: string): Promise<void> {
  if (!link.includes('#pair=') && !/^[A-Za-z0-9_-]+$/.test(link)) throw new UsageError('expected an invite link (…#pair=…) or its payload');
  await withPeer(ctx, async ({ peer }) => {
    const pair = await peer.acceptInvite(link); // sends the reply once, best effort
    // The app the inviter uses is one this person can reach: our own invites open it too (unless set otherwise).
    const app = appUrlOfLink(link);
    if (app) updateHomeConfig(ctx.paths, { pairedAppUrl: app });
    const daemon = runningServer(ctx.paths);
    let st = (await peer.syncStatus()).peers.find((p) => p.did === pair.peerDid);
    // Not attempted yet (e.g. a running daemon was flushing at that moment): try once more, or leave it to the daemon.
    if (st?.lastPath === 'pending' && !st.lastError && !daemon) {
      await peer.flushOutbox();
      st = (await peer.syncStatus()).peers.find((p) => p.did === pair.peerDid);
    }
    const reply =
      st?.lastPath === 'direct'
        ? 'delivered direct'
        : st?.lastPath === 'relay'
          ? `deposited at ${st.relay ?? 'the relay'}`
          : st?.lastError
            ? `queued (${st.lastError}); spl serve retries it`
            : `queued; spl serve (pid ${daemon?.pid ?? '?'}) sends it`;
    ctx.io.out(
      `Paired with ${pair.name} (${pair.peerDid}), waiting for its confirmation\n` +
        `  threads: ${pair.threads.length ? pair.threads.join(', ') : 'none yet'}\n` +
        `  direct:  ${pair.peerUrl ?? 'none (relay only)'}\n` +
        `  reply:   ${reply}\n`,
    );
  });
}

export async function pairListCommand(ctx: CliContext, opts: { json?: boolean }): Promise<void> {
  await withPeer(ctx, async ({ peer }) => {
    const pairs = await peer.pairs();
    if (opts.json) {
      ctx.io.out(
        json(
          pairs.map((p) => ({
            did: p.peerDid,
            name: p.name,
            state: pairState(p),
            peer_url: p.peerUrl ?? null,
            threads: p.threads,
            enabled: p.enabled,
          })),
        ),
      );
      return;
    }
    if (pairs.length === 0) ctx.io.out('no pairs yet (spl pair invite)\n');
    for (const p of pairs) {
      ctx.io.out(
        `${p.name} (${p.peerDid}): ${pairState(p)}\n  threads: ${p.threads.join(', ') || 'none'}\n  direct:  ${p.peerUrl ?? 'none'}\n`,
      );
    }
  });
}

/** A pair named by its DID or its name (exact, case-insensitive); ambiguity is an error. */
export function findPair<P extends { peerDid: string; name: string }>(pairs: readonly P[], who: string): P {
  const byDid = pairs.find((p) => p.peerDid === who);
  if (byDid) return byDid;
  const byName = pairs.filter((p) => p.name.toLowerCase() === who.trim().toLowerCase());
  if (byName.length === 1) return byName[0]!;
  if (byName.length > 1) throw new UsageError(`${byName.length} pairs are named "${who}": name one by its DID (spl pair list)`);
  throw new UsageError(`no pair "${who}" (spl pair list shows names and DIDs)`);
}

/** `spl pair end <did|name>` (§9): nothing more is sent to or accepted from it. */
export async function pairEndCommand(ctx: CliContext, who: string): Promise<void> {
  await withPeer(ctx, async ({ peer }) => {
    const pair = findPair(await peer.pairs(), who);
    if (!pair.enabled) {
      ctx.io.out(`the pair with ${pair.name} has already ended (${pair.endReason ?? 'disabled'})\n`);
      return;
    }
    await peer.endPair(pair.peerDid);
    await peer.flushOutbox().catch(() => undefined); // the notice, best effort; spl serve retries it
    ctx.io.out(`Ended the pair with ${pair.name} (${pair.peerDid}): nothing more is sent to it or accepted from it.\n`);
  });
}

/** What a pair's state means to its owner. */
export function pairState(p: { enabled: boolean; waiting?: boolean; endReason?: string }): string {
  if (p.enabled) return p.waiting ? 'waiting for confirmation' : 'paired';
  if (p.endReason === 'ended_by_peer') return 'ended by the peer';
  if (p.endReason?.startsWith('refused: ')) return `refused by the inviter (${p.endReason.slice(9).replace('_', ' ')})`;
  return 'ended';
}
