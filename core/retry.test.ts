import { waitAtMost } from "./retry";

const timers = () => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;

describe("waitAtMost", () => {
  test("answers the work's value when it settles first, and leaves no timer behind", async () => {
    const before = timers();
    await expect(waitAtMost(Promise.resolve(7), 60_000)).resolves.toBe(7);
    expect(timers()).toBe(before);
  });

  test("answers undefined once the time has run out", async () => {
    const started = Date.now();
    await expect(waitAtMost(new Promise<never>(() => undefined), 30)).resolves.toBeUndefined();
    expect(Date.now() - started).toBeGreaterThanOrEqual(25);
  });

  test("throws the work's rejection, and leaves no timer behind", async () => {
    const before = timers();
    await expect(waitAtMost(Promise.reject(new Error("refused")), 60_000)).rejects.toThrow("refused");
    expect(timers()).toBe(before);
  });
});
