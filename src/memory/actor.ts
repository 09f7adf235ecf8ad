/** Who acts on the pool: a plugin id, or the host application (the controller's own API), which may act on any segment. */
export type Actor = string;
export const HOST_ACTOR = 'host';

/** May `by` act on what `owner` owns: its owner may, and the host application on anything. */
export function actsFor(by: Actor, owner: string): boolean {
  return by === HOST_ACTOR || by === owner;
}
