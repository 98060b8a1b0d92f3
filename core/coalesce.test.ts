import { Coalescer } from "./coalesce";

test("items added while a request is in flight go together in the next; each settles with its own request", async () => {
  const sent: number[][] = [];
  const gates: (() => void)[] = [];
  const c = new Coalescer<number>(async (items) => {
    sent.push(items);
    await new Promise<void>((resolve) => gates.push(resolve));
    if (items.includes(3)) throw new Error("refused");
  });
  const first = c.add(1);
  const second = [c.add(2), c.add(3)];
  expect(sent).toEqual([[1]]);
  gates[0]?.();
  await first;
  await new Promise((r) => setImmediate(r));
  expect(sent).toEqual([[1], [2, 3]]);
  gates[1]?.();
  await expect(Promise.all(second)).rejects.toThrow("refused");
  await expect(second[0]).rejects.toThrow("refused");
  // A failed request does not stop the next one.
  const later = c.add(4);
  await new Promise((r) => setImmediate(r));
  gates[2]?.();
  await expect(later).resolves.toBeUndefined();
  expect(sent).toEqual([[1], [2, 3], [4]]);
});
