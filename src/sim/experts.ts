// Scripted experts: a small state machine per sub-goal with P-control towards privileged object poses, plus seeded
// noise and perturbations so that demonstrations contain recoveries.
//
// How the expert reads state: createExpert(env, seed) keeps the env (a SimEnv from createEnv) and calls
// env.privileged() in every act(); the observation passed to act() is ignored. The runner builds it per episode as
// `(env) => createExpert(env)`.
//
// Pick-and-place:  approach (open, above the object, yaw aligned with a cube face) -> descend -> close -> lift ->
// move (over the place point) -> lower -> release -> retreat, then the next unsatisfied sub-goal. If the object is
// not held by both pads while lifting/moving/lowering (slipped, knocked out, dropped by a perturbation), or a phase
// takes too long, the expert opens, rises and approaches again. Push: rise, go behind the object on the line from
// the zone through it, lower the closed fingers, push along the line, re-approach when the object leaves it.
import { createRng, type Rng } from './prng.js';
import type { ObjectState, PrivilegedState, SimEnv } from './env.js';
import { POSITION_SCALE_M, ROTATION_SCALE_RAD } from './env.js';
import { GRIPPER, SIZES, restingHeight, supportHeight } from './scene.js';
import type { Goal } from './tasks.js';
import type { Action, Env, Policy } from './types.js';

export interface ExpertOptions {
  /** std-dev of Gaussian noise added to the arm action entries (action units); default 0.05 */
  actionNoise?: number;
  /** per-step probability of a random 3-step shove of the gripper; default 0.015 */
  perturbationRate?: number;
  /** per-step probability, while carrying, of opening the gripper for 3 steps (drops the object); default 0.004 */
  dropRate?: number;
  /**
   * How the hand comes down to an object and to a place point. 'hover' (default): stop HOVER_Z above it, centre
   * within 1 cm, then descend straight down (a phase switch on a centimetre threshold). 'funnel': the height allowed
   * above the grasp (or release) height grows with the horizontal error (FUNNEL_SLOPE m per m, plus FUNNEL_YAW_SLOPE
   * m per rad of yaw error), so the hand descends while it centres and its height is a continuous function of what
   * the camera shows: the form a learned single-frame policy can imitate (docs/demonstrations.md).
   */
  approach?: 'hover' | 'funnel';
}

/** Heights of the TCP (m). */
const HOVER_Z = 0.12;
const CARRY_Z = 0.14;
const PUSH_Z = 0.02;
const PUSH_CLEAR_Z = 0.07;
/** gains: action = gain * error / scale */
const POSITION_GAIN = 0.8;
const ROTATION_GAIN = 0.8;
/** funnel approach: height allowed above the grasp / release height per metre of horizontal error, per rad of yaw error */
const FUNNEL_SLOPE = 2;
const FUNNEL_YAW_SLOPE = 0.3;
/** horizontal error (m) inside which the funnel is at the bottom */
const FUNNEL_TOLERANCE = 0.006;
/** a phase longer than this (steps) is treated as stuck and restarted */
const PHASE_TIMEOUT = 60;
/** lowering that makes no progress this long (something under the object) releases where it is */
const LOWER_TIMEOUT = 25;
/** with two objects for one basket, each goes this far off its centre */
const BASKET_SPOT_OFFSET = 0.037;
/** pads farther than this from any obstacle count as clear */
const PAD_CLEARANCE_M = 0.015;
/** open pad centre distance from the TCP, and a radius covering the pad's footprint */
const OPEN_PAD_OFFSET = GRIPPER.fingerTravel + GRIPPER.padHalf[1];
const PAD_RADIUS = Math.hypot(GRIPPER.padHalf[0], GRIPPER.padHalf[1]);

type Phase =
  | 'approach'
  | 'descend'
  | 'close'
  | 'lift'
  | 'move'
  | 'lower'
  | 'release'
  | 'retreat'
  | 'push-clear'
  | 'push-align'
  | 'push-lower'
  | 'push'
  | 'done';

const clip = (v: number, lo = -1, hi = 1) => (v < lo ? lo : v > hi ? hi : v);
const wrapAngle = (a: number) => a - 2 * Math.PI * Math.round(a / (2 * Math.PI));

function yawOf(q: number[]): number {
  const [w, x, y, z] = q;
  return Math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z));
}

/** World direction of a cylinder's axis (its local z). */
function cylinderAxis(q: number[]): number[] {
  const [w, x, y, z] = q;
  return [2 * (x * z + w * y), 2 * (y * z - w * x), 1 - 2 * (x * x + y * y)];
}

function distanceToSegment(p: number[], a: number[], b: number[]): number {
  const dx = b[0] - a[0];
  const dy = b[1] - a[1];
  const t = Math.max(0, Math.min(1, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / (dx * dx + dy * dy)));
  return Math.hypot(p[0] - a[0] - t * dx, p[1] - a[1] - t * dy);
}

/**
 * Smallest horizontal gap between the open pads (TCP at the object, height tcpZ, hand yaw) and anything tall enough
 * to be hit: other objects, basket walls, a plate's rim. Negative when a pad would land on something.
 */
function padClearance(state: PrivilegedState, name: string, tcpZ: number, yaw: number): number {
  const o = state.objects[name].position;
  const padBottom = tcpZ - GRIPPER.tipBelowTcp;
  const pads = [1, -1].map((side) => [o[0] - side * OPEN_PAD_OFFSET * Math.sin(yaw), o[1] + side * OPEN_PAD_OFFSET * Math.cos(yaw)]);
  let clearance = Infinity;
  for (const [other, q] of Object.entries(state.objects)) {
    if (other === name) continue;
    const lying = q.shape === 'cylinder' && Math.abs(cylinderAxis(q.quaternion)[2]) < 0.7;
    const radius = q.shape === 'cube' ? SIZES.cubeHalf * Math.SQRT2 : lying ? SIZES.cylinderHalfHeight : SIZES.cylinderRadius;
    const top = q.position[2] + (lying ? SIZES.cylinderRadius : q.shape === 'cube' ? SIZES.cubeHalf : SIZES.cylinderHalfHeight);
    if (top < padBottom) continue;
    for (const p of pads) clearance = Math.min(clearance, Math.hypot(p[0] - q.position[0], p[1] - q.position[1]) - radius - PAD_RADIUS);
  }
  for (const f of state.fixtures) {
    if (f.kind === 'basket' && SIZES.basketWallHeight > padBottom) {
      const h = SIZES.basketInnerHalf + SIZES.basketWallHalfThickness;
      const c = Math.cos(f.yaw);
      const s = Math.sin(f.yaw);
      const corner = (u: number, v: number) => [f.position[0] + h * (c * u - s * v), f.position[1] + h * (s * u + c * v)];
      const corners = [corner(-1, -1), corner(1, -1), corner(1, 1), corner(-1, 1)];
      for (let k = 0; k < 4; k++) {
        for (const p of pads) {
          const d = distanceToSegment(p, corners[k], corners[(k + 1) % 4]) - SIZES.basketWallHalfThickness - PAD_RADIUS;
          clearance = Math.min(clearance, d);
        }
      }
    } else if (f.kind === 'plate' && 2 * SIZES.plateHalfHeight > padBottom) {
      for (const p of pads) {
        const d = Math.hypot(p[0] - f.position[0], p[1] - f.position[1]) - SIZES.plateRadius - PAD_RADIUS;
        clearance = Math.min(clearance, d);
      }
    }
  }
  return clearance;
}

/** Funnel approach: the TCP height allowed at a horizontal error and yaw error above `bottom`, at most `top`. */
function funnelHeight(bottom: number, xyError: number, yawError: number, top: number): number {
  const above = FUNNEL_SLOPE * Math.max(0, xyError - FUNNEL_TOLERANCE) + FUNNEL_YAW_SLOPE * Math.max(0, yawError - 0.08);
  return Math.min(top, Math.max(bottom, bottom + above));
}

function asSimEnv(env: Env): SimEnv {
  if (typeof (env as Partial<SimEnv>).privileged !== 'function') {
    throw new TypeError('createExpert needs an env from src/sim/env.ts createEnv (it reads env.privileged()).');
  }
  return env as SimEnv;
}

/** A scripted expert for env's task; `seed` (default env.seed) seeds its noise. */
export function createExpert(env: Env, seed: number = env.seed, options: ExpertOptions = {}): ExpertPolicy {
  return new ScriptedExpert(asSimEnv(env), seed, options);
}

/** A scripted expert; `recoveries` counts re-grasps and re-approaches in the current episode. */
export interface ExpertPolicy extends Policy {
  readonly recoveries: number;
}

class ScriptedExpert implements ExpertPolicy {
  recoveries = 0;
  private rng: Rng;
  private phase: Phase = 'approach';
  private phaseSteps = 0;
  private goalIndex = 0;
  private lostGraspSteps = 0;
  private shove: { steps: number; direction: number[] } = { steps: 0, direction: [0, 0, 0] };
  private dropSteps = 0;
  private settleSteps = 0;
  /** grasp yaw chosen while approaching, kept while descending */
  private graspYawTarget = 0;
  private lastCommand: Action | undefined;
  private readonly noise: number;
  private readonly perturbationRate: number;
  private readonly dropRate: number;
  private readonly funnel: boolean;

  constructor(
    private readonly env: SimEnv,
    seed: number,
    options: ExpertOptions,
  ) {
    this.noise = options.actionNoise ?? 0.05;
    this.perturbationRate = options.perturbationRate ?? 0.015;
    this.dropRate = options.dropRate ?? 0.004;
    if (options.approach !== undefined && options.approach !== 'hover' && options.approach !== 'funnel') {
      throw new TypeError(`expert approach must be 'hover' or 'funnel', got ${String(options.approach)}.`);
    }
    this.funnel = options.approach === 'funnel';
    this.rng = createRng(seed, `expert:${env.task.id}`);
  }

  reset(taskId: string, seed: number): void {
    this.rng = createRng(seed, `expert:${taskId}`);
    this.phase = 'approach';
    this.phaseSteps = 0;
    this.goalIndex = 0;
    this.lostGraspSteps = 0;
    this.shove = { steps: 0, direction: [0, 0, 0] };
    this.dropSteps = 0;
    this.settleSteps = 0;
    this.recoveries = 0;
    this.lastCommand = undefined;
  }

  act(): Action {
    const state = this.env.privileged();
    const command = this.plan(state);
    this.lastCommand = command.map((v) => clip(v));
    return this.perturb(command);
  }

  /** The command of the last act() before noise, shoves and drops: what a learner should imitate. */
  label(): Action | undefined {
    return this.lastCommand;
  }

  private goTo(phase: Phase): void {
    this.phase = phase;
    this.phaseSteps = 0;
  }

  /** Leaves the plan because something went wrong (counted in `recoveries`). */
  private recover(phase: Phase): void {
    this.recoveries++;
    this.goTo(phase);
  }

  /** First unsatisfied goal (or -1). */
  private nextGoal(state: PrivilegedState): number {
    return state.goalsSatisfied.findIndex((ok) => !ok);
  }

  /** Arm action towards a TCP target position and yaw, keeping roll and pitch at zero. */
  private moveTo(state: PrivilegedState, target: number[], yaw: number, gripper: number, maxSpeed = 1): Action {
    const ee = state.eePosition;
    const [roll, pitch, eeYaw] = state.eeRollPitchYaw;
    const p = [0, 1, 2].map((i) => (POSITION_GAIN * (target[i] - ee[i])) / POSITION_SCALE_M);
    const norm = Math.max(Math.abs(p[0]), Math.abs(p[1]), Math.abs(p[2]));
    const s = norm > maxSpeed ? maxSpeed / norm : 1;
    return [
      p[0] * s,
      p[1] * s,
      p[2] * s,
      clip((-ROTATION_GAIN * roll) / ROTATION_SCALE_RAD),
      clip((-ROTATION_GAIN * pitch) / ROTATION_SCALE_RAD),
      clip((ROTATION_GAIN * wrapAngle(yaw - eeYaw)) / ROTATION_SCALE_RAD),
      gripper,
    ];
  }

  /**
   * Hand yaw for a grasp: pads on two faces of a cube (2 grips), across a lying cylinder (hand x along its axis), or
   * any of 6 yaws for a standing cylinder; among these, the one whose open pads stay clear of neighbours and basket
   * walls (up to PAD_CLEARANCE_M), then the one closest to the current yaw.
   */
  private graspYaw(state: PrivilegedState, name: string, currentYaw: number): number {
    const object = state.objects[name];
    let candidates: number[];
    if (object.shape === 'cube') {
      const faceYaw = yawOf(object.quaternion);
      candidates = [faceYaw, faceYaw + Math.PI / 2];
    } else {
      const axis = cylinderAxis(object.quaternion);
      candidates =
        Math.abs(axis[2]) > 0.7
          ? Array.from({ length: 6 }, (_, k) => currentYaw + (k * Math.PI) / 6)
          : [Math.atan2(axis[1], axis[0])];
    }
    let best = currentYaw;
    let bestScore = -Infinity;
    for (const candidate of candidates) {
      // the equivalent yaw (mod pi: the gripper is symmetric) nearest the current one, inside the joint range
      let yaw = candidate + Math.PI * Math.round((currentYaw - candidate) / Math.PI);
      if (Math.abs(yaw) > 2.5) yaw -= Math.sign(yaw) * Math.PI;
      const clearance = Math.min(PAD_CLEARANCE_M, padClearance(state, name, this.graspHeight(object), yaw));
      const score = clearance - 0.002 * Math.abs(wrapAngle(yaw - currentYaw));
      if (score > bestScore) [best, bestScore] = [yaw, score];
    }
    return best;
  }

  /** TCP height for grasping: a cube or lying cylinder at its centre, a standing cylinder 1.5 cm above it. */
  private graspHeight(object: ObjectState): number {
    const o = object.position;
    if (object.shape === 'cylinder' && Math.abs(cylinderAxis(object.quaternion)[2]) > 0.7) return o[2] + 0.015;
    return Math.max(o[2], 0.017);
  }

  /** Where the held object's centre should go for an `on` goal: [x, y, support top z]. */
  private placePoint(state: PrivilegedState, goal: Goal): number[] {
    const fixture = state.fixtures.find((f) => f.name === goal.target);
    if (!fixture) {
      const t = state.objects[goal.target];
      return [t.position[0], t.position[1], t.position[2] + restingHeight(t.shape)];
    }
    const [cx, cy] = fixture.position;
    let x = cx;
    let y = cy;
    const sharing = state.goals.filter((g) => g.kind === 'on' && g.target === goal.target).length;
    if (fixture.kind === 'basket' && sharing > 1) {
      // several objects go in: use the spot (3.7 cm off centre along a basket axis) farthest from those inside
      const c = Math.cos(fixture.yaw);
      const s = Math.sin(fixture.yaw);
      const inside = Object.entries(state.objects)
        .filter(([name, o]) => name !== goal.object && Math.hypot(o.position[0] - cx, o.position[1] - cy) < SIZES.basketInnerHalf)
        .map(([, o]) => o.position);
      let best = -1;
      for (const [u, v] of [[-1, 0], [1, 0], [0, -1], [0, 1]]) {
        const px = cx + BASKET_SPOT_OFFSET * (c * u - s * v);
        const py = cy + BASKET_SPOT_OFFSET * (s * u + c * v);
        const clearance = Math.min(Infinity, ...inside.map((q) => Math.hypot(q[0] - px, q[1] - py)));
        if (clearance > best + 1e-9) [best, x, y] = [clearance, px, py];
      }
    }
    return [x, y, supportHeight(fixture.kind)];
  }

  private plan(state: PrivilegedState): Action {
    this.phaseSteps++;
    const next = this.nextGoal(state);
    if (next < 0) {
      // all goals hold: rise and wait with the gripper open
      const ee = state.eePosition;
      return this.moveTo(state, [ee[0], ee[1], Math.max(ee[2], 0.1)], state.eeRollPitchYaw[2], -1, 0.5);
    }
    if (this.phase === 'approach') {
      // nothing held: work on the first unsatisfied goal
      this.goalIndex = next;
      if (state.goals[next].kind === 'push') this.goTo('push-clear');
    }
    const goal = state.goals[this.goalIndex];
    if (this.phaseSteps > PHASE_TIMEOUT && this.phase !== 'retreat') {
      this.recover(goal.kind === 'push' ? 'push-clear' : 'retreat');
    }
    return goal.kind === 'push' ? this.planPush(state, goal) : this.planPickPlace(state, goal);
  }

  private planPickPlace(state: PrivilegedState, goal: Goal): Action {
    const object = state.objects[goal.object];
    const ee = state.eePosition;
    const eeYaw = state.eeRollPitchYaw[2];
    const o = object.position;
    const held = object.touchingLeftPad && object.touchingRightPad;
    const carrying = this.phase === 'lift' || this.phase === 'move' || this.phase === 'lower';
    if (carrying) {
      this.lostGraspSteps = held ? 0 : this.lostGraspSteps + 1;
      if (this.lostGraspSteps >= 2) {
        this.lostGraspSteps = 0;
        this.recover('retreat');
      }
    }
    const graspZ = this.graspHeight(object);
    switch (this.phase) {
      case 'approach': {
        const yaw = this.graspYaw(state, goal.object, eeYaw);
        this.graspYawTarget = yaw;
        const xyError = Math.hypot(o[0] - ee[0], o[1] - ee[1]);
        if (this.funnel) {
          const yawError = Math.abs(wrapAngle(yaw - eeYaw));
          const allowed = funnelHeight(graspZ, xyError, yawError, HOVER_Z);
          // too low for the distance (e.g. after a failed grasp): rise in place first, so nothing is swept away
          if (ee[2] < allowed - 0.03) return this.moveTo(state, [ee[0], ee[1], allowed], yaw, -1);
          if (xyError < 0.008 && yawError < 0.08 && Math.abs(ee[2] - graspZ) < 0.005) this.goTo('close');
          return this.moveTo(state, [o[0], o[1], allowed], yaw, -1, 0.6);
        }
        // rise first when low and away from the object, so nothing is swept off the table
        const z = xyError > 0.03 && ee[2] < HOVER_Z - 0.03 ? Math.max(ee[2] + 0.05, HOVER_Z) : HOVER_Z;
        const target = xyError > 0.03 && ee[2] < HOVER_Z - 0.03 ? [ee[0], ee[1], z] : [o[0], o[1], z];
        if (xyError < 0.01 && Math.abs(wrapAngle(yaw - eeYaw)) < 0.08 && Math.abs(ee[2] - HOVER_Z) < 0.03) this.goTo('descend');
        return this.moveTo(state, target, yaw, -1);
      }
      case 'descend': {
        const yaw = this.graspYawTarget;
        const xyError = Math.hypot(o[0] - ee[0], o[1] - ee[1]);
        if (xyError > 0.025) this.recover('approach');
        else if (Math.abs(ee[2] - graspZ) < 0.005 && xyError < 0.008) this.goTo('close');
        return this.moveTo(state, [o[0], o[1], graspZ], yaw, -1, 0.6);
      }
      case 'close': {
        if (this.phaseSteps >= 4 && held) this.goTo('lift');
        else if (this.phaseSteps >= 10) this.recover('retreat');
        return this.moveTo(state, [ee[0], ee[1], ee[2]], eeYaw, 1);
      }
      case 'lift': {
        if (ee[2] > CARRY_Z - 0.02) this.goTo('move');
        return this.moveTo(state, [ee[0], ee[1], CARRY_Z], eeYaw, 1, 0.6);
      }
      case 'move': {
        const place = this.placePoint(state, goal);
        // aim the object's centre, not the TCP, at the place point
        const target = [place[0] - (o[0] - ee[0]), place[1] - (o[1] - ee[1]), CARRY_Z];
        const xyError = Math.hypot(target[0] - ee[0], target[1] - ee[1]);
        if (xyError < 0.008) this.goTo('lower');
        if (this.funnel) {
          // come down towards the release height while centring, never below it, never above the carry height
          const bottomBelowTcp = ee[2] - (o[2] - restingHeight(object.shape));
          target[2] = funnelHeight(place[2] + 0.008 + bottomBelowTcp, xyError, 0, CARRY_Z);
        }
        return this.moveTo(state, target, eeYaw, 1);
      }
      case 'lower': {
        const place = this.placePoint(state, goal);
        const bottomBelowTcp = ee[2] - (o[2] - restingHeight(object.shape));
        const z = place[2] + 0.008 + bottomBelowTcp;
        const target = [place[0] - (o[0] - ee[0]), place[1] - (o[1] - ee[1]), z];
        if (Math.hypot(target[0] - ee[0], target[1] - ee[1]) > 0.03) this.recover('move');
        else if (Math.abs(ee[2] - z) < 0.005 || this.phaseSteps > LOWER_TIMEOUT) this.goTo('release');
        return this.moveTo(state, target, eeYaw, 1, 0.5);
      }
      case 'release': {
        if (this.phaseSteps >= 4 && state.gripperOpening > 0.07) this.goTo('retreat');
        return this.moveTo(state, [ee[0], ee[1], ee[2]], eeYaw, -1);
      }
      case 'retreat':
      default: {
        if (ee[2] > HOVER_Z - 0.02 && state.gripperOpening > 0.06) {
          // wait for the placed object to settle before judging the goal
          this.settleSteps++;
          const next = this.nextGoal(state);
          if (next !== this.goalIndex || this.settleSteps > 5) {
            if (next === this.goalIndex) this.recoveries++; // placed but the goal does not hold: try again
            this.settleSteps = 0;
            this.goTo('approach');
          }
        }
        return this.moveTo(state, [ee[0], ee[1], HOVER_Z], eeYaw, -1, 0.6);
      }
    }
  }

  private planPush(state: PrivilegedState, goal: Goal): Action {
    const object = state.objects[goal.object];
    const zone = state.fixtures.find((f) => f.name === goal.target)!;
    const ee = state.eePosition;
    const o = object.position;
    const toZone = [zone.position[0] - o[0], zone.position[1] - o[1]];
    const distance = Math.hypot(toZone[0], toZone[1]);
    const dir = distance > 1e-4 ? [toZone[0] / distance, toZone[1] / distance] : [1, 0];
    // pusher yaw: hand x across the push direction (the closed pads' wider face forward), nearest equivalent
    const baseYaw = Math.atan2(dir[1], dir[0]) + Math.PI / 2;
    const eeYaw = state.eeRollPitchYaw[2];
    let yaw = baseYaw + Math.PI * Math.round((eeYaw - baseYaw) / Math.PI);
    if (Math.abs(yaw) > 2.5) yaw -= Math.sign(yaw) * Math.PI;
    const behind = 0.02 + 0.014 + 0.02;
    const start = [o[0] - dir[0] * behind, o[1] - dir[1] * behind];
    const rel = [ee[0] - o[0], ee[1] - o[1]];
    const along = rel[0] * dir[0] + rel[1] * dir[1];
    const lateral = rel[0] * -dir[1] + rel[1] * dir[0];
    if (distance < 0.012 && this.phase !== 'done') this.goTo('done');
    switch (this.phase) {
      case 'done':
        return this.moveTo(state, [ee[0], ee[1], 0.1], eeYaw, 1, 0.5);
      case 'push-clear': {
        if (ee[2] > PUSH_CLEAR_Z - 0.01) this.goTo('push-align');
        return this.moveTo(state, [ee[0], ee[1], PUSH_CLEAR_Z], eeYaw, 1, 0.6);
      }
      case 'push-align': {
        if (Math.hypot(start[0] - ee[0], start[1] - ee[1]) < 0.008 && Math.abs(wrapAngle(yaw - eeYaw)) < 0.1) this.goTo('push-lower');
        return this.moveTo(state, [start[0], start[1], PUSH_CLEAR_Z], yaw, 1);
      }
      case 'push-lower': {
        if (Math.hypot(start[0] - ee[0], start[1] - ee[1]) > 0.02) this.recover('push-clear');
        else if (Math.abs(ee[2] - PUSH_Z) < 0.005) this.goTo('push');
        return this.moveTo(state, [start[0], start[1], PUSH_Z], yaw, 1, 0.5);
      }
      case 'push':
      default: {
        if (Math.abs(lateral) > 0.012 || along > -0.02) {
          this.recover('push-clear');
          return this.moveTo(state, [ee[0], ee[1], PUSH_CLEAR_Z], eeYaw, 1, 0.6);
        }
        // stay on the line behind the object and advance up to 1.5 cm past contact, slower near the zone
        const advance = Math.min(0.015, distance);
        const target = [o[0] - dir[0] * (behind - 0.02 - advance), o[1] - dir[1] * (behind - 0.02 - advance), PUSH_Z];
        return this.moveTo(state, target, yaw, 1, 0.3);
      }
    }
  }

  /** Seeded action noise, occasional shoves and (while carrying) occasional drops. */
  private perturb(action: Action): Action {
    const rng = this.rng;
    const out = action.slice();
    for (let i = 0; i < 6; i++) out[i] += this.noise * rng.normal();
    const quiet = this.phase === 'close' || this.phase === 'release' || this.phase === 'push' || this.phase === 'done';
    if (this.shove.steps === 0 && !quiet && rng.next() < this.perturbationRate) {
      const angle = rng.uniform(-Math.PI, Math.PI);
      this.shove = { steps: 3, direction: [0.5 * Math.cos(angle), 0.5 * Math.sin(angle), rng.uniform(-0.1, 0.3)] };
    }
    if (this.shove.steps > 0) {
      this.shove.steps--;
      for (let i = 0; i < 3; i++) out[i] = this.shove.direction[i];
    }
    const carrying = this.phase === 'lift' || this.phase === 'move';
    if (this.dropSteps === 0 && carrying && rng.next() < this.dropRate) this.dropSteps = 3;
    if (this.dropSteps > 0) {
      this.dropSteps--;
      out[6] = -1;
    }
    return out.map((v) => clip(v));
  }
}
