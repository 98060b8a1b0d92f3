/**
 * The route table: the single source of truth for which handler serves which route key. The local
 * API Gateway emulator and the CDK stack both read it. Each handler lives in `functions/<file>.ts`
 * and exports `handler`.
 */

export interface RouteDefinition {
  /** API Gateway route key: `$connect`, `$disconnect`, `$default` or an `action` value. */
  routeKey: string;
  /** File under functions/, without extension. */
  file: string;
  /** Whether the handler's `body` is sent back to the caller (a two-way route with a route response). */
  routeResponse: boolean;
}

/** API Gateway's route selection expression for this API. */
export const ROUTE_SELECTION_EXPRESSION = "$request.body.action";

/** The REQUEST authorizer on `$connect`. */
export const AUTHORIZER = { file: "authorizer" } as const;

export const ROUTES: readonly RouteDefinition[] = [
  { routeKey: "$connect", file: "connect", routeResponse: false },
  { routeKey: "$disconnect", file: "disconnect", routeResponse: false },
  { routeKey: "joinRoom", file: "join-room", routeResponse: true },
  { routeKey: "leaveRoom", file: "leave-room", routeResponse: true },
  { routeKey: "sendMessage", file: "send-message", routeResponse: true },
  { routeKey: "getHistory", file: "get-history", routeResponse: true },
  { routeKey: "ping", file: "ping", routeResponse: true },
  { routeKey: "createRoom", file: "create-room", routeResponse: true },
  { routeKey: "invite", file: "invite", routeResponse: true },
  { routeKey: "removeMember", file: "remove-member", routeResponse: true },
  { routeKey: "openDirect", file: "open-direct", routeResponse: true },
  { routeKey: "listRooms", file: "list-rooms", routeResponse: true },
  { routeKey: "markRead", file: "mark-read", routeResponse: true },
  { routeKey: "resume", file: "resume", routeResponse: true },
  { routeKey: "getPresence", file: "get-presence", routeResponse: true },
  { routeKey: "typing", file: "typing", routeResponse: true },
  { routeKey: "$default", file: "default", routeResponse: true },
];

/** The long-running processes under worker/, each its own entry point and ECS service. */
export const WORKERS = [
  { name: "fanout", entry: "worker/fanout.ts" },
  { name: "persister", entry: "worker/persister.ts" },
] as const;
