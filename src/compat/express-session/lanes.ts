/**
 * Per store and session ID, the order of this process's store writes of one session (saves,
 * touches, destroys), and the destroys asked for while requests still hold the session. This is
 * what keeps a logout from being undone by a save in flight, late ones included.
 *
 * @packageDocumentation
 */

/** One session's lane. @internal */
export interface Lane {
  /** Writes waiting their turn, oldest first. */
  readonly waiting: (() => void)[];
  /** Whether a write is running: it has not yet released the lane. */
  busy: boolean;
  /** Requests that loaded or made this session and have not finished. */
  holders: number;
  /** Destroys asked for since the lane was made. */
  destroys: number;
}

const lanes = new WeakMap<object, Map<string, Lane>>();

function laneOf(store: object, sid: string): Lane {
  let bySid = lanes.get(store);
  if (bySid === undefined) lanes.set(store, (bySid = new Map()));
  let lane = bySid.get(sid);
  if (lane === undefined)
    bySid.set(sid, (lane = { waiting: [], busy: false, holders: 0, destroys: 0 }));
  return lane;
}

/** Forgets a lane nothing uses any more, so that the map holds only sessions in use. */
function tidy(store: object, sid: string, lane: Lane): void {
  if (lane.busy || lane.waiting.length > 0 || lane.holders > 0) return;
  const bySid = lanes.get(store);
  if (bySid?.get(sid) === lane) bySid.delete(sid);
}

/**
 * Marks a request as holding session `sid` (until {@link unholdSession}), so that the destroys
 * asked for meanwhile stay known; answers how many were asked for so far. @internal
 */
export function holdSession(store: object, sid: string): number {
  const lane = laneOf(store, sid);
  lane.holders++;
  return lane.destroys;
}

/** Ends a {@link holdSession}. @internal */
export function unholdSession(store: object, sid: string): void {
  const lane = lanes.get(store)?.get(sid);
  if (lane === undefined) return;
  lane.holders--;
  tidy(store, sid, lane);
}

/** How many destroys of `sid` were asked for since its lane was made (0 without a lane). @internal */
export function destroysOf(store: object, sid: string): number {
  return lanes.get(store)?.get(sid)?.destroys ?? 0;
}

/** Counts a destroy of `sid` as asked for now, before it waits for its turn. @internal */
export function markDestroyed(store: object, sid: string): void {
  laneOf(store, sid).destroys++;
}

/**
 * Runs `task` once every write of `sid` queued before it has called its `release`: each call to
 * `release` after the first is ignored. A task must release once the store has answered the last
 * call it made, even after its own deadline, so that the next write is issued after it lands.
 * @internal
 */
export function inLane(
  store: object,
  sid: string,
  task: (lane: Lane, release: () => void) => void,
): void {
  const lane = laneOf(store, sid);
  const run = () => {
    lane.busy = true;
    let released = false;
    task(lane, () => {
      if (released) return;
      released = true;
      lane.busy = false;
      const next = lane.waiting.shift();
      if (next !== undefined) next();
      else tidy(store, sid, lane);
    });
  };
  if (lane.busy) lane.waiting.push(run);
  else run();
}
