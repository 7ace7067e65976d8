/** Injected by vite.config.ts at build time: the relay that served this app locally, or "". */
declare const __SPL_DEFAULT_RELAY__: string;
/** True under the Vite dev server (module worker at /dev-sw.js), false in builds. */
declare const __SPL_SW_DEV__: boolean;
