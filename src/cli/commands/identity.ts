/** `spl init` and `spl identity`. */
import { hostname } from 'node:os';
import type { CliContext } from '../context';
import { withNewPeer, withPeer } from '../context';
import { CliError, UsageError } from '../errors';
import { readFileSync, writeFileSync } from 'node:fs';
import { json, scopeLabel } from '../format';
import { runningServer } from '../serve-state';

/** The backup passphrase comes from the environment, never from argv (visible in `ps`). */
function passphrase(ctx: CliContext): string {
  const p = ctx.io.env.SPL_PASSPHRASE;
  if (!p) throw new UsageError('set SPL_PASSPHRASE to the backup passphrase (it is not taken on the command line)');
  return p;
}

export async function initCommand(ctx: CliContext, opts: { name?: string; import?: string }): Promise<void> {
  const name = opts.name ?? hostname();
  await withNewPeer(ctx, async ({ peer }) => {
    const existing = peer.identity();
    if (existing) throw new CliError(`${ctx.paths.dir} already has an identity (${existing.name}, ${existing.did})`);
    let file: string | undefined;
    if (opts.import) {
      try {
        file = readFileSync(opts.import, 'utf8');
      } catch (e) {
        throw new UsageError(`cannot read ${opts.import}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    const me = file === undefined ? await peer.createIdentity(name) : await peer.importIdentity(file, passphrase(ctx));
    ctx.io.out(`${file === undefined ? 'Created' : 'Restored'} identity "${me.name}"\n  did:  ${me.did}\n  home: ${ctx.paths.dir}\n`);
    ctx.io.out('Next: spl config relay set <url> --for-pair all, then spl serve --daemon\n');
  });
}

export async function identityCommand(ctx: CliContext, opts: { json?: boolean; export?: string }): Promise<void> {
  await withPeer(ctx, async ({ peer, me }) => {
    if (opts.export) {
      const file = await peer.exportIdentity(passphrase(ctx));
      writeFileSync(opts.export, file, { mode: 0o600, flag: 'wx' }); // never overwrite an existing file
      ctx.io.out(
        `Wrote the encrypted identity of ${me.did} to ${opts.export}\nRestore it elsewhere with: SPL_PASSPHRASE=… spl init --import ${opts.export}\n`,
      );
      return;
    }
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
      relays.length
        ? `relays: ${relays.map((r) => `${r.url} (${scopeLabel(r.forPair)})`).join('\n        ')}`
        : 'relays: none (spl config relay set <url> --for-pair all)',
      `direct: ${
        !serving
          ? 'not serving (spl serve --daemon)'
          : serving.publicUrl
            ? `${serving.publicUrl} (spl serve, pid ${serving.pid})`
            : `not advertised: spl serve (pid ${serving.pid}) listens on ${serving.url}; peers reach it only at a URL you give with --public-url`
      }`,
      `home:   ${ctx.paths.dir}`,
    ];
    ctx.io.out(`${lines.join('\n')}\n`);
  });
}
