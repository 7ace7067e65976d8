// Svelte 5 with TypeScript in <script lang="ts"> (vitePreprocess strips the types).
import { vitePreprocess } from '@sveltejs/vite-plugin-svelte';

export default {
  preprocess: vitePreprocess(),
  compilerOptions: { runes: true },
};
