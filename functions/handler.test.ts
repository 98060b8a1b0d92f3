import { GetHistoryFrame, JoinRoomFrame, SendMessageFrame } from "../core/schemas";
import { describeIssue } from "./handler";

function answer(schema: { safeParse: (v: unknown) => { success: boolean; error?: unknown } }, frame: object) {
  const parsed = schema.safeParse(frame);
  if (parsed.success) throw new Error("expected the frame to be refused");
  return describeIssue(parsed.error as never, frame as Record<string, unknown>);
}

test("a missing field is named as required; a field of the wrong type says which type it must be", () => {
  expect(answer(JoinRoomFrame, { action: "joinRoom" })).toBe('The field "roomId" is required.');
  expect(answer(JoinRoomFrame, { action: "joinRoom", roomId: 5 })).toBe(
    'The field "roomId" must be a string.',
  );
  expect(answer(JoinRoomFrame, { action: "joinRoom", roomId: null })).toBe(
    'The field "roomId" must be a string.',
  );
  expect(answer(GetHistoryFrame, { action: "getHistory", roomId: "r", afterSeq: "3" })).toBe(
    'The field "afterSeq" must be a number.',
  );
  expect(
    answer(SendMessageFrame, { action: "sendMessage", roomId: "r", clientMsgId: "c", text: ["hi"] }),
  ).toBe('The field "text" must be a string.');
});

test("a value of the right type that breaks a rule quotes the rule", () => {
  expect(answer(JoinRoomFrame, { action: "joinRoom", roomId: "no spaces" })).toMatch(
    /^The field "roomId" is not valid: roomId must be 1-64 characters/,
  );
});
