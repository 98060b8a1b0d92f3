/**
 * `resume`: rejoin up to 50 rooms after a reconnect; each room's `joined` and `history` frames are
 * posted to the connection through the management API, and the route answers `resumed` last.
 */
import { createLogger } from "../core/logger";
import { resume } from "../core/resume";
import { ResumeFrame } from "../core/schemas";
import { connectionGateway } from "../core/wiring/gateway";
import { describeIssue, errorReply, refuse, reply, route } from "./handler";
import { joinDeps } from "./join-deps";

const log = createLogger("resume");

export const handler = route("resume", async (body, caller) => {
  const frame = ResumeFrame.safeParse(body);
  if (!frame.success)
    return errorReply("BAD_REQUEST", describeIssue(frame.error, body), { action: "resume" });
  const outcome = await resume(
    { ...joinDeps(), gateway: connectionGateway },
    caller,
    frame.data,
    (roomId, err) => log.error({ connectionId: caller.connectionId, roomId, err }, "resuming a room failed"),
  );
  if (!outcome.ok) return refuse(outcome.code, "resume");
  return reply({ type: "resumed", rooms: outcome.rooms, failed: outcome.failed });
});
