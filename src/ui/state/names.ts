/**
 * Names people and peers choose (display names, device names, thread titles) are untrusted text:
 * an invite or a pair record can carry anything. Before a name is shown or accepted we remove
 * what can make it lie or break the layout:
 * - control characters (C0, DEL, C1), which render as nothing or as boxes;
 * - bidi embeddings/overrides (U+202A–202E), isolates (U+2066–2069) and the directional marks
 *   (U+200E/F, U+061C), which can reorder the visible text: "‮moc.elgoog" shows as "google.com";
 * - line and paragraph separators (U+2028/2029), which break one-line layouts.
 * Whitespace runs collapse to one space. Length is capped visibly (an ellipsis), in code points.
 */

/** Longest name shown or accepted (code points). */
export const MAX_NAME_LENGTH = 64;

// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001F\u007F-\u009F\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069\u2028\u2029]/g;

/** The name with unsafe characters removed and whitespace collapsed (not shortened). */
export function cleanName(raw: string): string {
  // Whitespace first (tabs and line breaks are controls too, but they separate words).
  return raw.replace(/\s+/g, ' ').replace(UNSAFE, '').replace(/ {2,}/g, ' ').trim();
}

/** What the screens show: cleaned, and cut to {@link MAX_NAME_LENGTH} with an ellipsis. */
export function displayName(raw: string, max: number = MAX_NAME_LENGTH): string {
  const clean = cleanName(raw);
  const points = Array.from(clean);
  return points.length > max ? `${points.slice(0, max - 1).join('')}…` : clean;
}

export type NameCheck = { readonly ok: true; readonly name: string } | { readonly ok: false; readonly message: string };

/** A name typed on this device (display name, device name, thread title): cleaned, then checked. */
export function checkName(raw: string, what = 'A name', max: number = MAX_NAME_LENGTH): NameCheck {
  const name = cleanName(raw);
  if (!name) return { ok: false, message: `${what} cannot be empty.` };
  const length = Array.from(name).length;
  if (length > max) return { ok: false, message: `${what} can have at most ${max} characters (this one has ${length}).` };
  return { ok: true, name };
}
