/**
 * A send's first step against real Redis (REDIS_URL from the global set-up): membership, a
 * remembered retry and the rate limit answered in one script. A connection Redis does not remember
 * as the room's member draws nothing from its bucket and is sent to ask DynamoDB; once remembered it
 * is admitted; once forgotten (it left, or disconnected) it is asked about again.
 */
import { Redis } from "ioredis";
import { RedisMessageBus } from "../core/adapters/redis";

const url = process.env.REDIS_URL ?? "";
if (!url) throw new Error("REDIS_URL is not set: the integration global set-up must start Redis");

const redis = new Redis(url, { keyPrefix: `admit-${process.pid}-${Date.now().toString(36)}:` });
const bus = new RedisMessageBus(redis);
const rate = { scope: "connection" as const, perSecond: 0.001, burst: 2 };
const caller = { userId: "u1", connectionId: "c1" };

afterAll(() => redis.disconnect());

test("a connection not remembered as the room's member draws nothing and is sent to ask DynamoDB", async () => {
  for (let i = 0; i < 5; i++)
    expect(await bus.admit(caller, `m${i}`, rate, "room-1")).toEqual({ status: "unknown-member" });
  await bus.rememberMember("room-1", "c1");
  // The bucket is whole: both of its tokens are still there.
  expect(await bus.admit(caller, "a", rate, "room-1")).toEqual({ status: "admitted" });
  expect(await bus.admit(caller, "b", rate, "room-1")).toEqual({ status: "admitted" });
  expect(await bus.admit(caller, "c", rate, "room-1")).toEqual({ status: "rate-limited" });
  // Another room's membership is its own.
  expect(await bus.admit(caller, "d", rate, "room-2")).toEqual({ status: "unknown-member" });
  await bus.forgetMember(["room-1"], "c1");
  expect(await bus.admit(caller, "e", rate, "room-1")).toEqual({ status: "unknown-member" });
});

test("without a room the membership is not asked about: the bucket and the retry record answer", async () => {
  const other = { userId: "u2", connectionId: "c2" };
  expect(await bus.admit(other, "x", rate)).toEqual({ status: "admitted" });
  await bus.publish(
    {
      messageId: "m-x",
      roomId: "room-3",
      seq: 1,
      senderId: "u2",
      text: "hi",
      sentAt: new Date().toISOString(),
      clientMsgId: "x",
    },
    "digest",
  );
  const retry = await bus.admit(other, "x", rate);
  expect(retry).toMatchObject({ status: "duplicate", sent: { messageId: "m-x", seq: 1, roomId: "room-3" } });
});
