/** `spl fleet sync status | flush` and `spl doctor`. */
import type { CliContext } from '../context';
import { withPeer } from '../context';
import { NoIdentityError } from '../errors';
import { ago, json, relayLabel, scopeLabel } from '../format';
import { runningServer } from '../serve-state';
import type { CheckStatus, DoctorCheck, DoctorReport, PeerSyncStatus } from '../../sync/types';

function deliveryLine(p: PeerSyncStatus, now: number): string {
  const o = p.outbox;
  const counts = `outbox: ${o.pending} pending, ${o.direct} direct, ${o.relay} via relay, ${o.rejected} rejected`;
  if (!p.lastPath) return `delivery: nothing sent yet (${counts})`;
  const next = p.nextAttemptAt !== undefined ? `, next retry ${ago(now - p.nextAttemptAt)}` : '';
  return `delivery: ${p.lastPath}${next} (${counts})`;
}

export async function syncStatusCommand(ctx: CliContext, opts: { json?: boolean }): Promise<void> {
  await withPeer(ctx, async ({ peer }) => {
    const status = await peer.syncStatus();
    if (opts.json) {
      ctx.io.out(json(status));
      return;
    }
    const now = Date.now();
    const lines: string[] = ['pairs:'];
    if (status.peers.length === 0) lines.push('  none (spl pair invite)');
    for (const p of status.peers) {
      lines.push(`  ${p.name} (${p.did})${p.state === 'paired' ? '' : `: ${p.state.replace('_', ' ')}`}`);
      lines.push(`    ${deliveryLine(p, now)}`);
      const r = p.records;
      lines.push(
        `    records: ${r.delivered} delivered, ${r.relay} at the relay, ${r.queued} queued${r.rejected ? `, ${r.rejected} refused` : ''}`,
      );
      lines.push(`    routes: direct ${p.peerUrl ?? 'none'}, relay ${p.relay ?? 'none'}`);
      lines.push(`    last error: ${p.lastError ?? 'none'}`);
    }
    lines.push('relays:');
    if (status.relays.length === 0) lines.push('  none (spl config relay set <url> --for-pair all)');
    for (const r of status.relays) {
      lines.push(`  ${relayLabel(r.relayUrl)} (${r.forPairs.map(scopeLabel).join(', ')})`);
      lines.push(`    last receive: ${r.lastReceiveAt !== undefined ? ago(now - r.lastReceiveAt) : 'never'}, backlog ${r.backlog}`);
      if (r.lastError) lines.push(`    last error: ${r.lastError}`);
    }
    ctx.io.out(`${lines.join('\n')}\n`);
  });
}

/** Retries every pending envelope now (what the daemon does when the network comes back). */
export async function syncFlushCommand(ctx: CliContext, opts: { json?: boolean }): Promise<void> {
  await withPeer(ctx, async ({ peer }) => {
    const r = await peer.flushOutbox({ all: true });
    if (opts.json) ctx.io.out(json(r));
    else
      ctx.io.out(
        `attempted ${r.attempted}: ${r.direct} direct, ${r.relay} via relay, ${r.pending} still pending, ${r.rejected} rejected\n`,
      );
  });
}

const rank: Record<CheckStatus, number> = { pass: 0, warn: 1, fail: 2 };
const mark: Record<CheckStatus, string> = { pass: '✓', warn: '!', fail: '✗' };

function printReport(ctx: CliContext, report: DoctorReport, asJson: boolean | undefined): void {
  const { checks, status } = report;
  if (asJson) ctx.io.out(json(report));
  else {
    for (const c of checks) ctx.io.out(`${mark[c.status]} ${c.id}: ${c.message}\n`);
    const n = (s: CheckStatus) => checks.filter((c) => c.status === s).length;
    ctx.io.out(`doctor: ${status} (${n('fail')} fail, ${n('warn')} warn, ${n('pass')} pass)\n`);
  }
}

/** Exit code: 0 pass, 1 warn, 2 fail. A home without identity is a failure: nothing can sync. */
export async function doctorCommand(ctx: CliContext, opts: { json?: boolean }): Promise<number> {
  try {
    return await checkPeer(ctx, opts);
  } catch (e) {
    if (!(e instanceof NoIdentityError)) throw e;
    printReport(ctx, { status: 'fail', checks: [{ id: 'identity', status: 'fail', message: e.message }] }, opts.json);
    return rank.fail;
  }
}

/** What to type about a finding: the engine names the problem, the CLI the command that fixes it. */
const CLI_HINTS: Readonly<Record<string, string>> = {
  relay_configured: 'spl config relay set <url> --for-pair all',
};

function withCliHint(check: DoctorCheck): DoctorCheck {
  const hint = CLI_HINTS[check.id];
  return hint && check.status !== 'pass' ? { ...check, message: `${check.message} (${hint})` } : check;
}

function checkPeer(ctx: CliContext, opts: { json?: boolean }): Promise<number> {
  return withPeer(ctx, async ({ peer }) => {
    const serving = runningServer(ctx.paths);
    const base = await peer.doctor({});
    const daemon: DoctorCheck = serving
      ? { id: 'daemon', status: 'pass', message: `spl serve is running (pid ${serving.pid}, ${serving.publicUrl})` }
      : { id: 'daemon', status: 'warn', message: 'spl serve is not running: nothing is received or retried (spl serve --daemon)' };
    const checks = [...base.checks.map(withCliHint), daemon];
    const status = checks.reduce<CheckStatus>((w, c) => (rank[c.status] > rank[w] ? c.status : w), 'pass');
    printReport(ctx, { status, checks }, opts.json);
    return rank[status];
  });
}
