/**
 * The project's Lambda handlers by route key, loaded from functions/ as the route table names them:
 * what the local stack runs behind the API Gateway emulator, in its handler threads or in the
 * gateway's own.
 */
import { AUTHORIZER, ROUTES } from "../../functions/routes";
import type { LambdaHandler } from "../gateway/invocations";

export interface Handlers {
  /** Route key → the handler functions/<file>.ts exports. */
  routes: Record<string, LambdaHandler>;
  /** The REQUEST authorizer on `$connect`. */
  authorizer: LambdaHandler;
}

/** Route keys whose handler's answer goes back to the client (two-way routes). */
export const ROUTE_RESPONSES: ReadonlySet<string> = new Set(
  ROUTES.filter((r) => r.routeResponse).map((r) => r.routeKey),
);

/** Requires every handler module (a cold start: each opens its clients on first use, not here). */
export function loadHandlers(): Handlers {
  const routes: Record<string, LambdaHandler> = {};
  for (const route of ROUTES) routes[route.routeKey] = require(`../../functions/${route.file}`).handler;
  return { routes, authorizer: require(`../../functions/${AUTHORIZER.file}`).handler };
}
