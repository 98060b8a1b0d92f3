import { codePointLength, GetHistoryFrame, SendMessageFrame, toMessageFrame } from "./schemas";

test("codePointLength counts code points, not UTF-16 units", () => {
  expect(codePointLength("abc")).toBe(3);
  expect(codePointLength("😀😀")).toBe(2);
  expect(codePointLength("e\u0301")).toBe(2);
});

describe("SendMessageFrame", () => {
  const base = { action: "sendMessage", roomId: "lobby", clientMsgId: "c-1" };
  test("takes a valid frame and drops unknown fields", () => {
    const parsed = SendMessageFrame.parse({ ...base, text: "hi", extra: 1, __proto__: { polluted: true } });
    expect(parsed).toEqual({ ...base, text: "hi" });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
  test.each([
    ["white space only", " \u00a0\n"],
    ["empty", ""],
    ["a lone surrogate", "a\ud800b"],
  ])("refuses text that is %s", (_label, text) => {
    expect(SendMessageFrame.safeParse({ ...base, text }).success).toBe(false);
  });
});

describe("GetHistoryFrame", () => {
  test.each([
    [{ afterSeq: 1, beforeSeq: 2 }, false],
    [{ limit: 100 }, true],
    [{ limit: 101 }, false],
    [{ afterSeq: 0 }, true],
    [{ beforeSeq: -1 }, false],
    [{ afterSeq: 1.5 }, false],
  ])("%j valid: %s", (extra, valid) => {
    expect(GetHistoryFrame.safeParse({ action: "getHistory", roomId: "r", ...extra }).success).toBe(valid);
  });
});

test("toMessageFrame leaves senderName out when there is none", () => {
  const frame = toMessageFrame({
    messageId: "m",
    roomId: "r",
    seq: 1,
    senderId: "u",
    text: "t",
    sentAt: "2026-01-01T00:00:00.000Z",
    clientMsgId: "c",
  });
  expect("senderName" in frame).toBe(false);
  expect(frame.type).toBe("message");
});
