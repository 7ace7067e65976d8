/**
 * Flash messages ("Note saved.", "Could not share: …"): one at a time, owned by the screen that
 * said it, gone when the person navigates away. Before, a message outlived its screen ("Note
 * saved." on Sync) and stood above an inline error it contradicted (issue 15).
 */
import { screenKey, type Route } from './routes';

export type FlashTone = 'info' | 'ok' | 'error';

export interface Flash {
  readonly text: string;
  readonly tone: FlashTone;
  /** The screen ({@link screenKey}) it was said on. */
  readonly screen: string;
}

export const makeFlash = (text: string, tone: FlashTone, on: Route): Flash => ({ text, tone, screen: screenKey(on) });

/** The flash still shown after moving to `to`: only one said on that very screen survives. */
export const flashAfterNavigation = (flash: Flash | undefined, to: Route): Flash | undefined =>
  flash && flash.screen === screenKey(to) ? flash : undefined;
