/**
 * What this device hides without telling anyone: archived threads, threads and own notes deleted
 * here. The store keeps every record (other devices still have them, and the protocol has no
 * delete), so "delete" is a local hiding list, and the screens say so. Kept in localStorage: only
 * the page reads it.
 */
export interface KeyValue {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

export type ListName = 'archived-threads' | 'deleted-threads' | 'hidden-notes';

const KEY_PREFIX = 'spl-ui:';
/** A bound on what a hostile or runaway list can cost us on every start (entries, not bytes). */
const MAX_ENTRIES = 10_000;

export class LocalLists {
  constructor(private readonly kv: KeyValue | undefined) {}

  get(list: ListName): ReadonlySet<string> {
    const raw = this.kv?.getItem(KEY_PREFIX + list);
    if (!raw) return new Set();
    try {
      const parsed: unknown = JSON.parse(raw);
      return new Set(Array.isArray(parsed) ? parsed.filter((v): v is string => typeof v === 'string') : []);
    } catch {
      return new Set(); // a damaged entry hides nothing rather than breaking the app
    }
  }

  set(list: ListName, id: string, member: boolean): ReadonlySet<string> {
    const next = new Set(this.get(list));
    if (member) next.add(id);
    else next.delete(id);
    this.kv?.setItem(KEY_PREFIX + list, JSON.stringify([...next].slice(-MAX_ENTRIES)));
    return next;
  }
}

/** When this device last showed each thread: what arrived after it is unread. */
export class LastSeen {
  private static readonly KEY = `${KEY_PREFIX}last-seen`;
  constructor(private readonly kv: KeyValue | undefined) {}

  all(): ReadonlyMap<string, number> {
    try {
      const parsed = JSON.parse(this.kv?.getItem(LastSeen.KEY) ?? '{}') as unknown;
      if (typeof parsed !== 'object' || parsed === null) return new Map();
      return new Map(Object.entries(parsed).filter((e): e is [string, number] => typeof e[1] === 'number'));
    } catch {
      return new Map();
    }
  }

  mark(thread: string, at: number): void {
    const entries: [string, number][] = [...this.all(), [thread, at]];
    const next = Object.fromEntries(entries.slice(-MAX_ENTRIES));
    this.kv?.setItem(LastSeen.KEY, JSON.stringify(next));
  }
}

/** localStorage where it exists and works (it throws in some private modes). */
export function browserKeyValue(): KeyValue | undefined {
  try {
    return typeof localStorage === 'undefined' ? undefined : localStorage;
  } catch {
    return undefined;
  }
}
