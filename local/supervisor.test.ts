import { type Restartable, supervise } from "./supervisor";

/** A fake process: die() ends the current incarnation; restart() starts a new one (or fails). */
function fake(failRestarts = 0) {
  let end: (how: string) => void = () => undefined;
  let current = new Promise<string>((done) => {
    end = done;
  });
  let failures = failRestarts;
  const target: Restartable & { die(how: string): void; starts: number } = {
    starts: 0,
    exited: () => current,
    restart: async () => {
      target.starts++;
      current = new Promise<string>((done) => {
        end = done;
      });
      if (failures-- > 0) {
        end("code 1");
        throw new Error("could not start\nmore detail");
      }
    },
    die: (how) => end(how),
  };
  return target;
}

const flush = async (ms: number) => {
  await jest.advanceTimersByTimeAsync(ms);
};

beforeEach(() => jest.useFakeTimers());
afterEach(() => jest.useRealTimers());

test("restarts after the first delay and says so in one line each", async () => {
  const lines: string[] = [];
  const target = fake();
  const supervisor = supervise("persister-2", target, { say: (l) => lines.push(l) });
  target.die("signal SIGKILL");
  await flush(0);
  expect(lines).toEqual(["persister-2 exited (signal SIGKILL); restarting in 1 s"]);
  await flush(999);
  expect(target.starts).toBe(0);
  await flush(1);
  expect(target.starts).toBe(1);
  expect(lines.at(-1)).toBe("persister-2 running again");
  supervisor.stop();
});

test("the delay doubles while restarts fail, up to the cap", async () => {
  const lines: string[] = [];
  const target = fake(5);
  const supervisor = supervise("kafka", target, { say: (l) => lines.push(l), maxDelayMs: 4000 });
  target.die("signal SIGKILL");
  await flush(1000 + 2000 + 4000 + 4000 + 4000 + 4000);
  expect(lines.filter((l) => l.includes("restarting in"))).toEqual([
    "kafka exited (signal SIGKILL); restarting in 1 s",
    "kafka exited (code 1); restarting in 2 s",
    "kafka exited (code 1); restarting in 4 s",
    "kafka exited (code 1); restarting in 4 s",
    "kafka exited (code 1); restarting in 4 s",
    "kafka exited (code 1); restarting in 4 s",
  ]);
  expect(lines).toContain("kafka could not be restarted (could not start)");
  expect(lines.at(-1)).toBe("kafka running again");
  expect(target.starts).toBe(6);
  supervisor.stop();
});

test("after stop() nothing is restarted, even while waiting to", async () => {
  const lines: string[] = [];
  const target = fake();
  const supervisor = supervise("redis", target, { say: (l) => lines.push(l) });
  target.die("signal SIGKILL");
  await flush(0);
  supervisor.stop();
  await flush(60_000);
  expect(target.starts).toBe(0);
  expect(lines).toEqual(["redis exited (signal SIGKILL); restarting in 1 s"]);
});
