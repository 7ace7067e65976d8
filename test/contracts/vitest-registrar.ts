/** Registers contract tests as vitest tests (Node runs). */
import { it } from 'vitest';
import type { ContractRegistrar } from './registrar';

export const vitestRegistrar: ContractRegistrar = {
  test: (name, fn) => {
    it(name, fn);
  },
  note: (message) => console.info(message),
};
