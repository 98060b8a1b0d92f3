import { shardOf } from "./redis";

test("a room always maps to the same shard, and rooms spread over the shards", () => {
  expect(shardOf("lobby", 16)).toBe(shardOf("lobby", 16));
  const counts = new Array(16).fill(0);
  for (let i = 0; i < 1600; i++) counts[shardOf(`room-${i}`, 16)]++;
  expect(Math.min(...counts)).toBeGreaterThan(50);
  expect(Math.max(...counts)).toBeLessThan(150);
});
