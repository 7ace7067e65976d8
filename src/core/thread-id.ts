/** Thread IDs (PROTOCOL.md §3). Its own module so a caller needing only the pattern loads no crypto. */
export const THREAD_RE = /^th_[A-Za-z0-9_]{1,128}$/;
