/**
 * What a benchmark writes to disk, counted where it lands: the block device under a path
 * (/sys/dev/block/MAJ:MIN/stat, 512-byte sectors), with every dirty page flushed around the phase.
 * Other processes' writes count too: run the benchmark alone.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';

/** Bytes the block device holding `path` has written so far, or NaN (tmpfs, no device visible here). */
export function deviceWrittenBytes(path: string): number {
  const dev = BigInt(statSync(path).dev);
  const major = Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn));
  const minor = Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn));
  try {
    return Number(readFileSync(`/sys/dev/block/${major}:${minor}/stat`, 'utf8').trim().split(/\s+/)[6]) * 512;
  } catch {
    return NaN;
  }
}

/** Flushes every dirty page of the machine to its device. */
export const syncDisks = (): void => void execFileSync('sync');

/** A file's size, 0 when it does not exist (a WAL just truncated away). */
export function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
