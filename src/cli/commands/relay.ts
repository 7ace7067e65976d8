/** `spl config relay set | show | status | clear` (the guide's commands and output). */
import type { CliContext } from '../context';
import { withPeer } from '../context';
import { CliError } from '../errors';
import { ago, json, relayLabel, scopeLabel } from '../format';
import { parseForPair, parseRelayUrl } from '../parse';

export async function relaySetCommand(ctx: CliContext, url: string, opts: { forPair: string }): Promise<void> {
  const forPair = parseForPair(opts.forPair);
  await withPeer(ctx, async ({ peer }) => {
    await peer.setRelay(parseRelayUrl(url), forPair);
    const entry = (await peer.relays()).find((r) => r.forPair === forPair);
    ctx.io.out(`${scopeLabel(forPair)}: ${entry?.url ?? url} (enabled)\n`);
  });
}

export async function relayShowCommand(ctx: CliContext, opts: { json?: boolean }): Promise<void> {
  await withPeer(ctx, async ({ peer }) => {
    const relays = await peer.relays();
    if (opts.json) {
      ctx.io.out(json(relays.map((r) => ({ for_pair: r.forPair, url: r.url, enabled: r.enabled }))));
      return;
    }
    if (relays.length === 0) {
      ctx.io.out('no relay configured (spl config relay set <url> --for-pair all)\n');
      return;
    }
    for (const r of relays) ctx.io.out(`${scopeLabel(r.forPair)}: ${r.url} (${r.enabled ? 'enabled' : 'disabled'})\n`);
  });
}

/** Probes every enabled relay's /health; exit 1 when one is unreachable ("you won't receive anything"). */
export async function relayStatusCommand(ctx: CliContext, opts: { json?: boolean }): Promise<void> {
  await withPeer(ctx, async ({ peer }) => {
    const urls = [...new Set((await peer.relays()).filter((r) => r.enabled).map((r) => r.url))];
    if (urls.length === 0) throw new CliError('no relay configured: spl config relay set <url> --for-pair all');
    const [health, status] = await Promise.all([Promise.all(urls.map((u) => peer.relayHealth(u))), peer.syncStatus()]);
    const now = Date.now();
    if (opts.json) {
      ctx.io.out(
        json(
          health.map((h) => {
            const st = status.relays.find((r) => r.relayUrl === h.url);
            return { ...h, backlog: st?.backlog ?? null, last_receive_at: st?.lastReceiveAt ?? null, last_error: st?.lastError ?? null };
          }),
        ),
      );
    } else {
      for (const h of health) {
        const outcome = h.ok
          ? `${h.status ?? ''} ok`
          : h.status
            ? `${h.status} ${h.error ?? 'failed'}`
            : `failed: ${h.error ?? 'no answer'}`;
        ctx.io.out(`${relayLabel(h.url)} → /health ${outcome} (${h.latencyMs ?? '?'}ms)\n`);
        const st = status.relays.find((r) => r.relayUrl === h.url);
        if (st?.lastReceiveAt !== undefined) {
          ctx.io.out(
            `  backlog ${st.backlog}, last receive ${ago(now - st.lastReceiveAt)}${st.lastError ? `, last error: ${st.lastError}` : ''}\n`,
          );
        }
      }
    }
    const down = health.filter((h) => !h.ok);
    if (down.length) throw new CliError(`${down.length} relay(s) unreachable: ${down.map((h) => relayLabel(h.url)).join(', ')}`);
  });
}

export async function relayClearCommand(ctx: CliContext, opts: { forPair: string }): Promise<void> {
  const forPair = parseForPair(opts.forPair);
  await withPeer(ctx, async ({ peer }) => {
    await peer.clearRelay(forPair);
    const entry = (await peer.relays()).find((r) => r.forPair === forPair);
    ctx.io.out(`${scopeLabel(forPair)}: ${entry?.url ?? ''} (disabled)\n`);
  });
}
