/**
 * One size limit for a note, the same in the app and in the headless peer: `spl emit --text`
 * receives the note as one command-line argument, and Linux refuses a single argument of 128 KiB
 * or more (MAX_ARG_STRLEN = 131,072 bytes including the terminating NUL; measured: 131,071 bytes
 * pass, 131,072 fail with E2BIG). So a note is at most 131,071 bytes of UTF-8.
 */
export const MAX_NOTE_BYTES = 131_071;

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
