/** `spl config app-url set | show | clear`: the app invite links open (stored in <home>/config.json). */
import type { CliContext } from '../context';
import { inviteAppUrl } from '../context';
import { json } from '../format';
import { ensureHome } from '../home';
import { updateHomeConfig } from '../home-config';

const SOURCE_LABEL = {
  flag: '--app-url',
  env: '$SPL_APP_URL',
  config: 'spl config app-url set',
  paired: 'the app of the last invite this home accepted',
} as const;

export function appUrlSetCommand(ctx: CliContext, url: string): void {
  ensureHome(ctx.paths.dir);
  updateHomeConfig(ctx.paths, { appUrl: url });
  ctx.io.out(`app URL: ${url}\ninvite links now open ${url}#pair=…\n`);
}

export function appUrlShowCommand(ctx: CliContext, opts: { json?: boolean }): void {
  const app = inviteAppUrl(ctx);
  if (opts.json) {
    ctx.io.out(json({ url: app?.url ?? null, source: app?.source ?? null }));
    return;
  }
  if (!app) ctx.io.out('no app URL: invites are bare syncropel:#pair=… links (spl config app-url set <url>)\n');
  else ctx.io.out(`${app.url} (from ${SOURCE_LABEL[app.source]})\n`);
}

export function appUrlClearCommand(ctx: CliContext): void {
  updateHomeConfig(ctx.paths, { appUrl: undefined });
  const app = inviteAppUrl(ctx);
  ctx.io.out(`cleared the configured app URL${app ? `; invites now use ${app.url} (from ${SOURCE_LABEL[app.source]})` : ''}\n`);
}
