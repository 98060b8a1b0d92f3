// A stand-in handler thread for host.test.ts: it speaks thread.ts's messages, and its "handlers"
// do what the test needs of a thread (answer, fail, wait, crash) without loading the project's.
const { parentPort, threadId } = require("node:worker_threads");

const handlers = {
  echo: async (event) => ({ event, threadId, setting: process.env.TEST_THREAD_SETTING }),
  slow: async () => {
    await new Promise((r) => setTimeout(r, 100));
    return { threadId };
  },
  crash: () =>
    new Promise(() => {
      setImmediate(() => {
        throw new Error("a fault outside any invocation's promise");
      });
    }),
};

parentPort.on("message", (message) => {
  if (message.type === "close") {
    parentPort.postMessage({ type: "closed" });
    parentPort.close();
    return;
  }
  const handler = handlers[message.handler];
  Promise.resolve()
    .then(() => (handler ? handler(message.event) : Promise.reject(new TypeError(`no ${message.handler}`))))
    .then(
      (result) => parentPort.postMessage({ type: "result", id: message.id, ok: true, result }),
      (error) =>
        parentPort.postMessage({
          type: "result",
          id: message.id,
          ok: false,
          error: { name: error.name, message: error.message, stack: error.stack },
        }),
    );
});
parentPort.postMessage({ type: "ready" });
