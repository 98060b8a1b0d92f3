/** Stops what global-setup.ts started and removes its data. */
import type { LocalServices } from "../local/services";

/** A slot on the jest process's globalThis, shared with global-setup.ts. */
const slot = globalThis as typeof globalThis & { __chatLocalServices?: LocalServices };

export default async function globalTeardown(): Promise<void> {
  const services = slot.__chatLocalServices;
  slot.__chatLocalServices = undefined;
  await services?.stop();
}
