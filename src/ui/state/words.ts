/**
 * Words a person knows, for what the engine reports in protocol terms: invite problems, doctor
 * checks, sync counters, expiry times. Screens never show "records", "LEARN" or check IDs.
 */
import type { InviteErrorCode } from '../../core';
import type { CheckStatus, DoctorCheck } from '../../sync/types';
import type { CounterName, DeliveryPath } from '../../sync/store-types';
import type { Route } from './routes';

const rtf = new Intl.RelativeTimeFormat('en', { numeric: 'auto' });

/** "in 6 days", "in 3 hours", "5 minutes ago": the largest unit that fits, rounded. */
export function relativeWords(at: number, now: number = Date.now()): string {
  const seconds = Math.round((at - now) / 1000);
  const abs = Math.abs(seconds);
  if (abs < 60) return rtf.format(seconds, 'second');
  if (abs < 3600) return rtf.format(Math.round(seconds / 60), 'minute');
  if (abs < 86_400) return rtf.format(Math.round(seconds / 3600), 'hour');
  return rtf.format(Math.round(seconds / 86_400), 'day');
}

/** "Expires in 6 days" / "Expired 2 days ago". */
export const expiryWords = (exp: number, now: number = Date.now()): string =>
  exp >= now ? `Expires ${relativeWords(exp, now)}` : `Expired ${relativeWords(exp, now)}`;

/** What went wrong with an invite link, for the person holding it. */
export function inviteProblem(code: InviteErrorCode, exp?: number, now: number = Date.now()): string {
  switch (code) {
    case 'expired_invite':
      return `This invite has expired${exp !== undefined ? ` (${relativeWords(exp, now)})` : ''}. Ask the other device for a new one.`;
    case 'bad_invite_signature':
      return 'This invite was changed after it was made, so it cannot be trusted. Ask the other device for a new one.';
    default:
      return 'This is not a complete pairing link. Copy the whole link from the other device (it contains “#pair=”) and paste it again.';
  }
}

export const OWN_INVITE = 'This is your own invite. Open it on the other device, not on this one.';

/** The reason `acceptInvite` failed, in words (the engine's messages are for logs and the CLI). */
export function acceptProblem(message: string): string {
  if (/your own/.test(message)) return OWN_INVITE;
  if (/already (used|redeemed)|used once/i.test(message)) return 'This invite was already used. Ask the other device for a new one.';
  if (/expired/.test(message)) return 'This invite has expired. Ask the other device for a new one.';
  if (/fetch|network|offline/i.test(message))
    return 'Could not reach the other device or its relay. Your reply is kept and sent when you are back online.';
  return `Pairing did not work: ${message}`;
}

// ---- doctor ---------------------------------------------------------------------------------

export interface CheckWords {
  readonly title: string;
  readonly summary: string;
  /** One line saying what to do, for a warning or a failure. */
  readonly fix?: string;
  /** Where the fix is done. */
  readonly fixAt?: { readonly label: string; readonly href: string };
}

/** The senders a drop check names after its colon ("…: laptop (2), phone (1)"). */
const senders = (message: string): string => {
  const list = /: ([^:]+)$/.exec(message)?.[1];
  return list ? ` (from ${list})` : '';
};
const count = (message: string): number => Number(/^(\d+)/.exec(message)?.[1] ?? 0);
/** Every number in the message, added up ("2 envelope(s) and 1 record(s) failed …" → 3). */
const total = (message: string): number => (message.match(/\d+/g) ?? []).reduce((n, d) => n + Number(d), 0);
const plural = (n: number, one: string, many: string): string => `${n} ${n === 1 ? one : many}`;
const sentence = (s: string): string => (s ? s[0]!.toUpperCase() + s.slice(1) : s);
const at = (route: Route['screen'], label: string) => ({ label, href: `#/${route}` });

export function checkWords(check: DoctorCheck): CheckWords {
  const { id, status, message } = check;
  const ok = status === 'pass';
  switch (id) {
    case 'identity':
      return ok
        ? { title: 'Your identity', summary: `This device is set up as ${message.replace(/ \(did:.*\)$/, '')}.` }
        : { title: 'Your identity', summary: 'This device has no identity yet.', fix: 'Create one on the start screen.' };
    case 'relay_configured':
      return {
        title: 'Relay',
        summary: 'No relay is set, so nothing reaches this device while it is offline.',
        fix: 'Set a relay.',
        fixAt: at('relays', 'Relays'),
      };
    case 'relay_reachable': {
      const url = message.split(' ')[0] ?? '';
      const ms = /\((\d+) ms\)$/.exec(message)?.[1];
      const why = /is not reachable: (.*?)(; you will not receive anything through it)?$/.exec(message)?.[1];
      return ok
        ? { title: 'Relay reachable', summary: `The relay at ${url} answers${ms ? ` (${ms} ms)` : ''}.` }
        : {
            title: 'Relay reachable',
            summary: `The relay at ${url} cannot be reached${why ? ` (${why})` : ''}, so nothing arrives through it.`,
            fix: 'Check the address, or try again once you are online.',
            fixAt: at('relays', 'Relays'),
          };
    }
    case 'receive_task':
      return {
        title: 'Checking for new notes',
        summary:
          sentence(
            message.replace('the receive task last ran', 'last checked').replace('the receive task has not run yet', 'not checked yet'),
          ) + '.',
        ...(ok ? {} : { fix: 'Open the app while online, or press “Sync now”.' }),
      };
    case 'receive_errors':
      return {
        title: 'Receiving',
        summary: sentence(message.replace(/^last receive from (\S+) failed:/, 'Could not fetch new notes from $1:')),
        fix: 'Check that relay.',
        fixAt: at('relays', 'Relays'),
      };
    case 'periodic_sync':
      if (ok) return { title: 'Background updates', summary: 'This browser checks for new notes in the background.' };
      if (/unsupported|no periodic/.test(message)) {
        return {
          title: 'Background updates',
          summary: 'This browser gets new notes only while the app is open.',
          fix: 'Open the app now and then, or use a browser that can install it (Chrome, Edge).',
        };
      }
      return {
        title: 'Background updates',
        summary: 'Background updates are off until the app is installed.',
        fix: 'Install the app.',
        fixAt: { label: 'Install', href: '#/me' },
      };
    case 'outbox_stuck': {
      if (ok) {
        const n = count(message);
        return {
          title: 'Sending',
          summary: n ? `${plural(n, 'message is', 'messages are')} waiting to be sent; none is stuck.` : 'Nothing is waiting to be sent.',
        };
      }
      return {
        title: 'Sending',
        summary: `${plural(count(message), 'message', 'messages')} could not be delivered for a while.`,
        fix: 'See why under Sync; the other device’s relay may be down.',
        fixAt: at('sync', 'Sync'),
      };
    }
    case 'outbox_rejected':
      return {
        title: 'Refused deliveries',
        summary: `${plural(count(message), 'message was', 'messages were')} refused and will not be retried.`,
        fix: 'See the reason under Sync.',
        fixAt: at('sync', 'Sync'),
      };
    case 'redelivery':
      return ok
        ? { title: 'Duplicates', summary: 'No message arrived twice.' }
        : {
            title: 'Duplicates',
            summary: `${plural(count(message), 'message', 'messages')} arrived again after an interrupted sync; each note was kept once.`,
            fix: 'Nothing to do unless this number keeps growing.',
          };
    case 'dropped_unpaired':
      return ok
        ? { title: 'Messages from strangers', summary: 'None arrived.' }
        : {
            title: 'Messages from strangers',
            summary: `${plural(count(message), 'note', 'notes')} from devices you have not paired with ${count(message) === 1 ? 'was' : 'were'} ignored.`,
            fix: 'If you expected them, pair with that device.',
            fixAt: at('pair', 'Pair'),
          };
    case 'rejected_content':
      return {
        title: 'Damaged messages',
        summary: `${plural(total(message), 'message', 'messages')} failed the signature or encryption check and ${total(message) === 1 ? 'was' : 'were'} thrown away.`,
        fix: 'Nothing to do; if it keeps happening, someone may be tampering with messages on the way.',
      };
    case 'dropped_ungranted':
      return {
        title: 'Notes on threads you did not share',
        summary: `${plural(count(message), 'note', 'notes')} came on threads you have not shared with the device that sent ${count(message) === 1 ? 'it' : 'them'}, and ${count(message) === 1 ? 'was' : 'were'} ignored${senders(message)}.`,
        fix: 'If you want them, share that thread with the device.',
        fixAt: at('pair', 'Pair'),
      };
    case 'clock_reused':
      return {
        title: 'Contradicting notes',
        summary: `${plural(count(message), 'note', 'notes')} claimed a place another note of the same author already holds, and ${count(message) === 1 ? 'was' : 'were'} refused${senders(message)}.`,
        fix: 'The first version was kept. If it keeps happening, that device may be misbehaving.',
      };
    case 'dropped_unpaired_senders':
      return { title: 'Who the strangers were', summary: `Sent by ${message.replace(/^unpaired senders: /, '')}.` };
    case 'pair_refusals':
      return {
        title: 'Refused pairings',
        summary: `An invite was used a second time or after it expired: ${message.replace(/^pairing refused for /, '').replace(/: make a new invite for them$/, '')}.`,
        fix: 'Make a new invite for them.',
        fixAt: at('pair', 'Pair'),
      };
    case 'storage_quota':
      return { title: 'Storage', summary: sentence(message) + '.', ...(ok ? {} : { fix: 'Free some space on this device.' }) };
    default:
      return { title: sentence(id.replaceAll('_', ' ')), summary: sentence(message) };
  }
}

export const statusWords: Record<CheckStatus, string> = { pass: 'All good', warn: 'Needs attention', fail: 'Not working' };

// ---- sync counters ---------------------------------------------------------------------------

export const counterWords: Record<CounterName, string> = {
  envelopes_received: 'Deliveries received',
  envelopes_redelivered: 'Deliveries that came a second time',
  envelopes_rejected: 'Deliveries thrown away (failed checks)',
  records_ingested: 'Notes and changes stored',
  records_duplicate: 'Copies of something already here',
  records_dropped_unpaired: 'Notes from unpaired devices (ignored)',
  records_dropped_ungranted: 'Notes on threads not shared with their sender (ignored)',
  records_refused_clock_reused: 'Notes that contradicted an earlier note (refused)',
  records_rejected_invalid: 'Notes with a bad signature (ignored)',
  direct_received: 'Deliveries straight from a device',
};

export const outboxWords: Record<DeliveryPath, string> = {
  direct: 'Delivered directly',
  relay: 'Left at the relay',
  pending: 'Waiting to send',
  rejected: 'Refused',
};
