/** `ping`: keeps the connection from idling; answers pong without touching any store. */
import type { HandlerResult } from "./event";
import { reply } from "./reply";

export async function handler(): Promise<HandlerResult> {
  return reply({ type: "pong" });
}
