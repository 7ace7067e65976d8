/** Small display helpers shared by the screens. */

/** `did:key:z6Mk…` → `z6Mk…a1b2` so people can tell two keys apart at a glance. */
export function shortDid(did: string): string {
  const id = did.startsWith('did:key:') ? did.slice('did:key:'.length) : did;
  return id.length > 14 ? `${id.slice(0, 8)}…${id.slice(-4)}` : id;
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
const dateTimeFmt = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });

/** Today: time only; otherwise date and time. */
export function when(ms: number | undefined, now: number = Date.now()): string {
  if (ms === undefined) return 'never';
  const d = new Date(ms);
  return new Date(now).toDateString() === d.toDateString() ? timeFmt.format(d) : dateTimeFmt.format(d);
}

/** "in 12 s", "3 min ago". */
export function relative(ms: number | undefined, now: number = Date.now()): string {
  if (ms === undefined) return 'never';
  const delta = Math.round((ms - now) / 1000);
  const abs = Math.abs(delta);
  const text =
    abs < 60
      ? `${abs} s`
      : abs < 3600
        ? `${Math.round(abs / 60)} min`
        : abs < 86400
          ? `${Math.round(abs / 3600)} h`
          : `${Math.round(abs / 86400)} d`;
  if (abs < 2) return 'now';
  return delta > 0 ? `in ${text}` : `${text} ago`;
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(1)} GiB`;
}

export const errorText = (e: unknown): string => (e instanceof Error ? e.message : String(e));
