import { MAX_NOTE_BYTES } from '../../sync/types';

/** The one note size limit of app, CLI and engine (see its definition). */
export { MAX_NOTE_BYTES };

const encoder = new TextEncoder();

export const noteBytes = (text: string): number => encoder.encode(text).length;

/** "12.3 KB": what the counter under the note field shows (1 KB = 1,024 bytes, as the limit). */
export function kb(bytes: number): string {
  if (bytes < 1024) return `${bytes} bytes`;
  return `${(bytes / 1024).toFixed(bytes < 10 * 1024 ? 1 : 0)} KB`;
}

/** Why a note cannot be saved, or undefined when it can. */
export function noteProblem(text: string): string | undefined {
  if (!text.trim()) return 'Write something first.';
  const size = noteBytes(text);
  if (size > MAX_NOTE_BYTES) {
    return `This note is ${kb(size)}; a note can be at most ${kb(MAX_NOTE_BYTES)}. Split it into several notes, or shorten it.`;
  }
  return undefined;
}
