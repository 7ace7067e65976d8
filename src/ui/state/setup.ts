/**
 * First-run form checks, all done before anything is created: an identity cannot be undone, so a
 * bad relay URL found after `createIdentity` would leave the device half set up (issue 15).
 */
import { isHttpUrl } from '../../core';
import { normalizeRelayUrl } from '../../sync/config';
import { checkName } from './names';

export interface SetupInput {
  readonly name: string;
  readonly relay: string;
}

export type SetupCheck =
  | { readonly ok: true; readonly name: string; readonly relay: string | undefined }
  | { readonly ok: false; readonly field: 'name' | 'relay'; readonly message: string };

/** A relay URL typed by a person: empty means "none"; otherwise http(s) only. */
export function checkRelayUrl(raw: string): { ok: true; url: string | undefined } | { ok: false; message: string } {
  const trimmed = raw.trim();
  if (!trimmed) return { ok: true, url: undefined };
  const url = normalizeRelayUrl(trimmed);
  if (isHttpUrl(url)) return { ok: true, url };
  return { ok: false, message: `“${trimmed}” is not a web address starting with https:// (or http://).` };
}

export function checkSetup(input: SetupInput): SetupCheck {
  const name = checkName(input.name, 'Your name');
  if (!name.ok) return { ok: false, field: 'name', message: name.message };
  const relay = checkRelayUrl(input.relay);
  if (!relay.ok) return { ok: false, field: 'relay', message: relay.message };
  return { ok: true, name: name.name, relay: relay.url };
}
