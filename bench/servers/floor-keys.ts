/** The names the floor's two processes share, under one run's prefix. */
export function floorKeys(id: string) {
  return {
    table: `${id}-table`,
    topic: `${id}-messages`,
    stream: `${id}:stream`,
    members: (roomId: string) => `${id}:members:${roomId}`,
  };
}
