// A handler thread's entry (host.ts starts it): worker threads do not inherit the loader that runs
// the TypeScript sources, so this registers it before thread.ts is loaded.
require("tsx/cjs/api").register();
require("./thread.ts");
