/** `spl init` and `spl identity`. */
import { hostname } from 'node:os';
import type { CliContext } from '../context';
import { withNewPeer, withPeer } from '../context';
import { CliError } from '../errors';
import { json, scopeLabel } from '../format';
import { runningServer } from '../serve-state';

export async function initCommand(ctx: CliContext, opts: { name?: string }): Promise<void> {
  const name = opts.name ?? hostname();
  await withNewPeer(ctx, async ({ peer }) => {
    const existing = peer.identity();
    if (existing) throw new CliError(`${ctx.paths.dir} already has an identity (${existing.name}, ${existing.did})`);
    const me = await peer.createIdentity(name);
    ctx.io.out(`Created identity "${me.name}"\n  did:  ${me.did}\n  home: ${ctx.paths.dir}\n`);
    ctx.io.out('Next: spl config relay set <url> --for-pair all, then spl serve --daemon\n');
  });
}

export async function identityCommand(ctx: CliContext, opts: { json?: boolean }): Promise<void> {
  await withPeer(ctx, async ({ peer, me }) => {
    const relays = (await peer.relays()).filter((r) => r.enabled);
    const serving = runningServer(ctx.paths);
    if (opts.json) {
      ctx.io.out(
        json({
          did: me.did,
          name: me.name,
          home: ctx.paths.dir,
          relays: relays.map((r) => ({ for_pair: r.forPair, url: r.url })),
          direct_url: serving?.publicUrl ?? null,
          serving: serving ? { pid: serving.pid, url: serving.url, started_at: serving.startedAt } : null,
        }),
      );
      return;
    }
    const lines = [
      `did:    ${me.did}`,
      `name:   ${me.name}`,
      relays.length ? `relays: ${relays.map((r) => `${r.url} (${scopeLabel(r.forPair)})`).join('\n        ')}` : 'relays: none (spl config relay set <url> --for-pair all)',
      `direct: ${serving ? `${serving.publicUrl} (spl serve, pid ${serving.pid})` : 'not serving (spl serve --daemon)'}`,
      `home:   ${ctx.paths.dir}`,
    ];
    ctx.io.out(`${lines.join('\n')}\n`);
  });
}
