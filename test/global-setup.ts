/** Starts the services the integration tests need, once per run (replaced by the service starters). */
export default async function globalSetup(): Promise<void> {}
