import path from "node:path";

/** The repository root: entry points, the lock file and the worker image's build context are under it. */
export const REPO_ROOT = path.resolve(__dirname, "..");
