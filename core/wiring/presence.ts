/** The presence port (Redis, on the message bus's connection: see bus.ts). */
export { presenceRegistry } from "./bus";
