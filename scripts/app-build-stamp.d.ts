/** Types of app-build-stamp.js (plain JS: `npm start` runs it without a compile step). */
export declare const APP_BUILD_INPUTS: readonly string[];
export declare const STAMP_FILE: string;
export declare function appBuildStamp(root: string, settings: { defaultRelay: string; inputs?: readonly string[] }): string;
