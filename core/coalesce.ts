/**
 * One request at a time, and what is asked for while it is in flight goes together in the next one:
 * concurrent callers in one process share round trips without waiting on a timer (at low rates each
 * goes alone, at once). Each caller's promise settles with the request that carried its item.
 */
export class Coalescer<T> {
  private queue: { item: T; resolve: () => void; reject: (error: unknown) => void }[] = [];
  private sending = false;

  /** `send` carries a batch of items; whatever it throws fails every item of that batch. */
  constructor(private readonly send: (items: T[]) => Promise<void>) {}

  add(item: T): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.sending) return;
    this.sending = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.queue.length);
        try {
          await this.send(batch.map((b) => b.item));
          for (const b of batch) b.resolve();
        } catch (error) {
          for (const b of batch) b.reject(error);
        }
      }
    } finally {
      this.sending = false;
    }
  }
}
