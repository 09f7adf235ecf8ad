/**
 * The monitor's policies as pure functions of a state and an observation, so each can be
 * tested on its own and the watcher only feeds them. Nothing here reads a file or a clock.
 */

/** alertOnThreshold's state: armed until it fires, re-armed below the threshold less the hysteresis. */
export interface ThresholdState {
  readonly armed: boolean;
}

export const ARMED: ThresholdState = Object.freeze({ armed: true });

/**
 * Once per crossing: fires when `value` reaches `threshold` while armed, then stays quiet
 * until `value` drops below `threshold - hysteresis` (so a value hovering at the threshold
 * alerts once, not once per sample).
 */
export function alertOnThreshold(state: ThresholdState, value: number, threshold: number, hysteresis: number): { state: ThresholdState; fire: boolean } {
  if (state.armed && value >= threshold) return { state: { armed: false }, fire: true };
  if (!state.armed && value < threshold - hysteresis) return { state: ARMED, fire: false };
  return { state, fire: false };
}

/** killOnExceed's state: since when the value has been above the limit without a break. */
export interface ExceedState {
  readonly since?: number;
}

/**
 * Kill once `value` has stayed above `limit` for `forMs` (a forMs of 0 kills at the first
 * observation above). `dueAt` says when to look again if the value stays put, since a value
 * that does not change produces no new observation.
 */
export function killOnExceed(state: ExceedState, value: number, limit: number, forMs: number, now: number): { state: ExceedState; kill: boolean; dueAt?: number } {
  if (value <= limit) return { state: {}, kill: false };
  const since = state.since ?? now;
  const dueAt = since + forMs;
  return { state: { since }, kill: now >= dueAt, dueAt };
}

/** One read of the CFS counters (cgroup cpu.stat nr_periods, nr_throttled). */
export interface ThrottleSample {
  readonly at: number;
  readonly periods: number;
  readonly throttled: number;
}

/**
 * The share of CFS periods in which the quota throttled the plugin, over the last
 * `windowMs`, once the samples cover the window (undefined before). Returns the samples to
 * keep: the oldest one at or before the window's start, and everything after it.
 */
export function throttledShare(samples: readonly ThrottleSample[], next: ThrottleSample, windowMs: number): { samples: ThrottleSample[]; percent?: number } {
  const all = [...samples, next];
  const start = next.at - windowMs;
  let first = 0;
  while (first + 1 < all.length && all[first + 1]!.at <= start) first++;
  const kept = all.slice(first);
  const base = kept[0]!;
  if (base.at > start) return { samples: kept };
  const periods = next.periods - base.periods;
  const throttled = next.throttled - base.throttled;
  return { samples: kept, percent: periods > 0 ? (throttled / periods) * 100 : 0 };
}

/** PSI trigger windows without CAP_SYS_RESOURCE must be multiples of 2 s (kernel psi.c). */
export const UNPRIVILEGED_PSI_WINDOW_MS = 2000;
/** The kernel's bounds on a PSI trigger window. */
export const PSI_WINDOW_MS = { min: 500, max: 10_000 } as const;

/**
 * The PSI trigger text for "stalled more than `percent` of `windowMs`" (`some` tasks
 * stalled). Without CAP_SYS_RESOURCE the kernel takes only whole multiples of 2 s, so the
 * window is rounded up to one (the stall share is kept).
 */
export function psiTrigger(percent: number, windowMs: number, privileged: boolean): { text: string; windowMs: number } {
  let w = Math.min(PSI_WINDOW_MS.max, Math.max(PSI_WINDOW_MS.min, Math.round(windowMs)));
  if (!privileged) w = Math.min(PSI_WINDOW_MS.max, Math.ceil(w / UNPRIVILEGED_PSI_WINDOW_MS) * UNPRIVILEGED_PSI_WINDOW_MS);
  const windowUs = w * 1000;
  const stallUs = Math.max(1, Math.min(windowUs, Math.round((percent / 100) * windowUs)));
  return { text: `some ${stallUs} ${windowUs}`, windowMs: w };
}

/** A pressure trigger's state: when it last fired. */
export interface PressureState {
  readonly lastFire?: number;
}

/**
 * The kernel fires a PSI trigger at most once per window, and again each window the stall
 * lasts. One crossing is a run of firings less than three windows apart: only its first is
 * reported. (Two windows were too few on a loaded host: a firing delivered a little late
 * looked like a new crossing.)
 */
export function pressureCrossing(state: PressureState, now: number, windowMs: number): { state: PressureState; fire: boolean } {
  const fire = state.lastFire === undefined || now - state.lastFire > 3 * windowMs;
  return { state: { lastFire: now }, fire };
}
