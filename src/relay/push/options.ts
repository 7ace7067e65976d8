/** Push wake options (PROTOCOL.md §5.2): on unless the operator turns it off. */
import { RelayOptionError } from '../options';

export interface PushOptions {
  /** `--no-push` turns push off: `GET /v1/push/vapid` and the subscription routes answer 404. */
  readonly enabled: boolean;
  /** The VAPID key pair (JSON); default `<db>.vapid.json`, created with mode 0600 on first start. */
  readonly vapidKeyFile: string | undefined;
  /** `mailto:` or `https:` URL the push service may contact; default `https://` + the relay's first origin. */
  readonly vapidSubject: string | undefined;
  /** Seconds between two pushes to one subscription (§5.2: 30 s). */
  readonly minIntervalSeconds: number;
  /**
   * One test push service whose endpoints skip the https and public-address rules, as an origin
   * (`http://127.0.0.1:4000`: scheme, host and port compared exactly).
   */
  readonly allowEndpoint: string | undefined;
}

export const DEFAULT_PUSH_OPTIONS: PushOptions = {
  enabled: true,
  vapidKeyFile: undefined,
  vapidSubject: undefined,
  minIntervalSeconds: 30,
  allowEndpoint: undefined,
};

/** The origin of `text` (scheme://host[:port], default ports dropped) or a RelayOptionError. */
export function parseAllowedPushOrigin(text: string): string {
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    throw new RelayOptionError(`--push-allow-endpoint must be an origin such as http://127.0.0.1:4000, got "${text}"`);
  }
  if (
    (url.protocol !== 'http:' && url.protocol !== 'https:') ||
    url.username ||
    url.password ||
    (url.pathname !== '/' && url.pathname !== '') ||
    url.search ||
    url.hash
  ) {
    throw new RelayOptionError(`--push-allow-endpoint must be an origin (scheme://host[:port], nothing else), got "${text}"`);
  }
  return url.origin;
}

export function validatePushOptions(o: PushOptions): PushOptions {
  if (!(Number.isFinite(o.minIntervalSeconds) && o.minIntervalSeconds >= 0.05 && o.minIntervalSeconds <= 86_400)) {
    throw new RelayOptionError('--push-min-interval must be a number of seconds in [0.05, 86400]');
  }
  if (o.vapidSubject !== undefined && !/^(mailto:\S+|https:\/\/\S+)$/.test(o.vapidSubject)) {
    throw new RelayOptionError(`--vapid-subject must be a mailto: or https: URL, got "${o.vapidSubject}"`);
  }
  if (o.allowEndpoint !== undefined) parseAllowedPushOrigin(o.allowEndpoint);
  return o;
}
