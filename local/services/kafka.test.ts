import { newClusterId } from "./kafka";

describe("newClusterId", () => {
  test("is 16 random bytes in base64url and never starts with '-' (the storage tool reads that as an option)", () => {
    const ids = Array.from({ length: 10_000 }, () => newClusterId());
    for (const id of ids) expect(id).toMatch(/^[A-Za-z0-9_][A-Za-z0-9_-]{21}$/);
    expect(new Set(ids).size).toBe(ids.length);
  });
});
