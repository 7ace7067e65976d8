/** What the scheduler (./scheduler.ts) gets from its platform: time, timers and the network state; injected so tests control them. */
export interface SchedulerClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Whether the device has a network (browsers say so; Node is always "online"). */
export interface OnlineState {
  isOnline(): boolean;
  /** Calls `listener` on each change; returns the unsubscribe. */
  subscribe(listener: (online: boolean) => void): () => void;
}

export const realClock: SchedulerClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};
/** Node: no network events; a failing relay is simply backed off. */
export const alwaysOnline: OnlineState = { isOnline: () => true, subscribe: () => () => undefined };
