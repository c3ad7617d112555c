// One episode of one task in MuJoCo: createEnv(taskId, seed) -> Env (src/sim/types.ts).
//
// Action (7 numbers, each clipped to [-1, 1]), like LIBERO's OSC_POSE delta controller at 20 Hz:
//   [0..2] delta TCP position, world frame:  x 0.05 m per control step at full scale (POSITION_SCALE_M)
//   [3..5] delta rotation as roll, pitch, yaw increments about the world x, y, z axes, applied as
//          R_target = Rz(dyaw) Ry(dpitch) Rx(droll) R_current:  0.25 rad per step at full scale (ROTATION_SCALE_RAD;
//          LIBERO's is 0.5, halved here because a 20 Hz servo tracks smaller turns)
//   [6]    gripper: -1 open ... +1 closed; per-finger target travel = 0.045 m x (1 - g) / 2 (force-limited,
//          so a closed command on an object squeezes it with at most FINGER_FORCE_N per finger)
// As in OSC, the servo target is the *current* pose plus the delta (no hidden integrated set-point), so zero action
// holds the gripper where it is. Roll and pitch are limited to +-0.9 rad, yaw to +-3.1 rad, the TCP to the
// workspace box of scene.ts. Each control step runs PHYSICS.substeps = 10 MuJoCo steps of 5 ms (50 ms, 20 Hz).
//
// Privileged state for scripted experts and diagnostics: SimEnv.privileged() (object poses, fixtures, goals,
// grasp contacts). Learned policies get only observe().
import { cameraFromMujoco } from './camera.js';
import { cameraId, loadModelFromXml, loadMujoco, type MainModule, type MjData, type MjModel } from './mujoco.js';
import { geomsFromMujoco, renderRgb } from './render.js';
import {
  FINGER_JOINTS,
  FINGER_PAD_GEOMS,
  GRIPPER,
  GRIPPER_GEOMS,
  HAND_JOINTS,
  PHYSICS,
  buildSceneXml,
  type FixtureSpec,
  type ObjectShape,
} from './scene.js';
import { getTask, goalSatisfied, sampleLayout, taskSucceeded, type Goal, type Layout, type SceneState, type TaskDefinition } from './tasks.js';
import { ACTION_DIMS, type Action, type CameraParams, type Env, type Observation, type RgbImage, type StepResult } from './types.js';

export const POSITION_SCALE_M = 0.05;
export const ROTATION_SCALE_RAD = 0.25;
export const DEFAULT_IMAGE_SIZE = 224;
/** Physics steps run after reset so objects settle on the table before step 0. */
const SETTLE_STEPS = 20;

export interface EnvOptions {
  /** render camera images in observe() unless observe({ render }) says otherwise; default true */
  render?: boolean;
  /** agent-view (and wrist) image size in pixels, square; default 224 */
  imageSize?: number;
  /** also render the wrist camera into observation.wristImage; default false */
  wristImage?: boolean;
}

export interface ObjectState {
  shape: ObjectShape;
  /** centre [x, y, z] */
  position: number[];
  /** [w, x, y, z] */
  quaternion: number[];
  /** linear velocity [vx, vy, vz] */
  velocity: number[];
  /** touches the left and right finger pads */
  touchingLeftPad: boolean;
  touchingRightPad: boolean;
}

/** Ground truth for scripted experts: never part of what a learned policy sees. */
export interface PrivilegedState {
  objects: Record<string, ObjectState>;
  fixtures: FixtureSpec[];
  goals: Goal[];
  /** per goal, whether its predicate holds now */
  goalsSatisfied: boolean[];
  eePosition: number[];
  /** hand joint angles [roll, pitch, yaw] */
  eeRollPitchYaw: number[];
  /** distance between the finger pads (m) */
  gripperOpening: number;
  step: number;
}

export interface SimEnv extends Env {
  readonly task: TaskDefinition;
  readonly layout: Layout;
  privileged(): PrivilegedState;
  /** the underlying MuJoCo objects (read-only use: renderer, diagnostics) */
  readonly mujoco: MainModule;
  readonly model: MjModel;
  readonly data: MjData;
}

/** Thrown by step() for an action that is not 7 finite numbers. */
export class InvalidActionError extends TypeError {
  constructor(reason: string) {
    super(`Invalid action: ${reason}. An action is ${ACTION_DIMS} finite numbers in [-1, 1] (dx dy dz droll dpitch dyaw gripper).`);
    this.name = 'InvalidActionError';
  }
}

function validateAction(action: unknown): ArrayLike<number> {
  if (action === null || typeof action !== 'object' || typeof (action as ArrayLike<number>).length !== 'number') {
    throw new InvalidActionError(`expected an array, got ${action === null ? 'null' : typeof action}`);
  }
  const a = action as ArrayLike<number>;
  if (a.length !== ACTION_DIMS) throw new InvalidActionError(`expected length ${ACTION_DIMS}, got length ${a.length}`);
  for (let i = 0; i < ACTION_DIMS; i++) {
    const v = a[i];
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new InvalidActionError(`action[${i}] is ${String(v)}`);
  }
  return a;
}

const clip = (v: number, lo: number, hi: number) => (v < lo ? lo : v > hi ? hi : v);

/** Rz(yaw) Ry(pitch) Rx(roll), row-major 3x3. */
function rotationFromRpy(roll: number, pitch: number, yaw: number): number[] {
  const [cr, sr, cp, sp, cy, sy] = [Math.cos(roll), Math.sin(roll), Math.cos(pitch), Math.sin(pitch), Math.cos(yaw), Math.sin(yaw)];
  return [
    cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr,
    sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr,
    -sp, cp * sr, cp * cr,
  ];
}

function multiply3(a: number[], b: number[]): number[] {
  const out = new Array<number>(9);
  for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) out[3 * i + j] = a[3 * i] * b[j] + a[3 * i + 1] * b[3 + j] + a[3 * i + 2] * b[6 + j];
  return out;
}

/** [roll, pitch, yaw] of R = Rz(yaw) Ry(pitch) Rx(roll); yaw unwrapped towards `yawNear`. */
function rpyFromRotation(r: number[], yawNear: number): number[] {
  const pitch = Math.asin(clip(-r[6], -1, 1));
  const roll = Math.atan2(r[7], r[8]);
  let yaw = Math.atan2(r[3], r[0]);
  yaw += 2 * Math.PI * Math.round((yawNear - yaw) / (2 * Math.PI));
  return [roll, pitch, yaw];
}

/**
 * Creates the episode: samples the seeded layout of `taskId`, compiles its MJCF, places the gripper and lets the
 * objects settle. Unknown task ids throw a UserError listing the known ones.
 */
export async function createEnv(taskId: string, seed: number, options: EnvOptions = {}): Promise<SimEnv> {
  const task = getTask(taskId);
  if (!Number.isInteger(seed)) throw new TypeError(`Seed must be an integer, got ${seed}.`);
  const mujoco = await loadMujoco();
  const layout = sampleLayout(task, seed);
  const model = loadModelFromXml(mujoco, buildSceneXml(layout.scene));
  let data: MjData | undefined;
  try {
    data = new mujoco.MjData(model);
    return new MujocoEnv(mujoco, model, data, task, seed, layout, options);
  } catch (error) {
    data?.delete();
    model.delete();
    throw error;
  }
}

class MujocoEnv implements SimEnv {
  readonly task: TaskDefinition;
  readonly seed: number;
  readonly layout: Layout;
  readonly mujoco: MainModule;
  readonly model: MjModel;
  readonly data: MjData;
  private steps = 0;
  private closed = false;
  private readonly render: boolean;
  private readonly imageSize: number;
  private readonly wristImage: boolean;
  private readonly agentviewId: number;
  private readonly wristId: number;
  /** qpos/qvel addresses */
  private readonly handQpos: number[];
  private readonly fingerQpos: number[];
  private readonly handBody: number;
  private readonly objectNames: string[];
  private readonly objectBody = new Map<string, number>();
  private readonly objectQvel = new Map<string, number>();
  private readonly objectShape = new Map<string, ObjectShape>();
  private readonly geomOwner: Map<number, string>;
  private readonly gripperGeoms: Set<number>;
  private readonly leftPad: number;
  private readonly rightPad: number;
  private blank?: RgbImage;
  private readonly sceneState: SceneState;

  constructor(mujoco: MainModule, model: MjModel, data: MjData, task: TaskDefinition, seed: number, layout: Layout, options: EnvOptions) {
    this.mujoco = mujoco;
    this.model = model;
    this.data = data;
    this.task = task;
    this.seed = seed;
    this.layout = layout;
    this.render = options.render ?? true;
    this.imageSize = options.imageSize ?? DEFAULT_IMAGE_SIZE;
    if (!(Number.isInteger(this.imageSize) && this.imageSize > 0)) throw new TypeError(`imageSize must be a positive integer, got ${this.imageSize}.`);
    this.wristImage = options.wristImage ?? false;
    const id = (type: number, name: string) => {
      const found = mujoco.mj_name2id(model, type, name);
      if (found < 0) throw new Error(`internal: MuJoCo model has no object named '${name}'`);
      return found;
    };
    const JOINT = mujoco.mjtObj.mjOBJ_JOINT.value;
    const BODY = mujoco.mjtObj.mjOBJ_BODY.value;
    const GEOM = mujoco.mjtObj.mjOBJ_GEOM.value;
    const qposAdr = model.jnt_qposadr as Int32Array;
    const dofAdr = model.jnt_dofadr as Int32Array;
    this.handQpos = HAND_JOINTS.map((j) => qposAdr[id(JOINT, j)]);
    this.fingerQpos = FINGER_JOINTS.map((j) => qposAdr[id(JOINT, j)]);
    this.handBody = id(BODY, 'hand');
    this.objectNames = layout.scene.objects.map((o) => o.name);
    this.geomOwner = new Map();
    for (const o of layout.scene.objects) {
      this.objectBody.set(o.name, id(BODY, o.name));
      this.objectQvel.set(o.name, dofAdr[id(JOINT, `${o.name}_joint`)]);
      this.objectShape.set(o.name, o.shape);
      this.geomOwner.set(id(GEOM, o.name), o.name);
    }
    this.gripperGeoms = new Set(GRIPPER_GEOMS.map((g) => id(GEOM, g)));
    [this.leftPad, this.rightPad] = FINGER_PAD_GEOMS.map((g) => id(GEOM, g));
    this.agentviewId = cameraId(mujoco, model, 'agentview');
    this.wristId = cameraId(mujoco, model, 'wrist');
    this.sceneState = {
      objectPosition: (name) => this.objectPosition(name),
      objectSpeed: (name) => {
        const v = this.data.qvel as Float64Array;
        const a = this.objectQvel.get(name)!;
        return Math.hypot(v[a], v[a + 1], v[a + 2]);
      },
      touchingGripper: (name) => this.contactsOf(name).gripper,
    };
    this.reset();
  }

  private reset(): void {
    const { mujoco, model, data } = this;
    mujoco.mj_resetData(model, data);
    const qpos = data.qpos as Float64Array;
    const ctrl = data.ctrl as Float64Array;
    const start = [...this.layout.eeStart, this.layout.eeYaw, 0, 0];
    this.handQpos.forEach((adr, i) => (qpos[adr] = start[i]));
    this.fingerQpos.forEach((adr) => (qpos[adr] = GRIPPER.fingerTravel));
    // actuators are declared in HAND_JOINTS then FINGER_JOINTS order (scene.ts)
    for (let i = 0; i < 6; i++) ctrl[i] = start[i];
    ctrl[6] = ctrl[7] = GRIPPER.fingerTravel;
    for (let i = 0; i < SETTLE_STEPS; i++) mujoco.mj_step(model, data);
    mujoco.mj_forward(model, data);
    this.steps = 0;
  }

  get stepCount(): number {
    return this.steps;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error(`Env for task '${this.task.id}' (seed ${this.seed}) is closed.`);
  }

  private objectPosition(name: string): number[] {
    const b = this.objectBody.get(name);
    if (b === undefined) throw new Error(`internal: no object '${name}'`);
    const x = this.data.xpos as Float64Array;
    return [x[3 * b], x[3 * b + 1], x[3 * b + 2]];
  }

  /** Contacts of one object with the gripper (any geom) and with each pad. */
  private contactsOf(name: string): { gripper: boolean; left: boolean; right: boolean } {
    const all = this.allGripperContacts();
    return all.get(name) ?? { gripper: false, left: false, right: false };
  }

  /** Per object, its contacts with the gripper; one pass over data.contact. */
  private allGripperContacts(): Map<string, { gripper: boolean; left: boolean; right: boolean }> {
    const result = new Map<string, { gripper: boolean; left: boolean; right: boolean }>();
    const n = this.data.ncon;
    if (n === 0) return result;
    const contacts = this.data.contact;
    try {
      for (let i = 0; i < n; i++) {
        const c = contacts.get(i);
        if (!c) continue;
        const g1 = c.geom1;
        const g2 = c.geom2;
        c.delete();
        let objectGeom = -1;
        let gripperGeom = -1;
        if (this.gripperGeoms.has(g1) && this.geomOwner.has(g2)) [gripperGeom, objectGeom] = [g1, g2];
        else if (this.gripperGeoms.has(g2) && this.geomOwner.has(g1)) [gripperGeom, objectGeom] = [g2, g1];
        else continue;
        const name = this.geomOwner.get(objectGeom)!;
        const entry = result.get(name) ?? { gripper: false, left: false, right: false };
        entry.gripper = true;
        if (gripperGeom === this.leftPad) entry.left = true;
        if (gripperGeom === this.rightPad) entry.right = true;
        result.set(name, entry);
      }
    } finally {
      contacts.delete();
    }
    return result;
  }

  private handState(): { position: number[]; rpy: number[]; opening: number } {
    const q = this.data.qpos as Float64Array;
    const h = this.handQpos;
    return {
      position: [q[h[0]], q[h[1]], q[h[2]]],
      rpy: [q[h[5]], q[h[4]], q[h[3]]],
      opening: q[this.fingerQpos[0]] + q[this.fingerQpos[1]],
    };
  }

  step(action: Action): StepResult {
    this.assertOpen();
    const a = validateAction(action);
    const { mujoco, model, data } = this;
    const hand = this.handState();
    const r = GRIPPER.range;
    const ctrl = data.ctrl as Float64Array;
    // position: current TCP + delta, kept in the workspace
    ctrl[0] = clip(hand.position[0] + POSITION_SCALE_M * clip(a[0], -1, 1), r.x[0], r.x[1]);
    ctrl[1] = clip(hand.position[1] + POSITION_SCALE_M * clip(a[1], -1, 1), r.y[0], r.y[1]);
    ctrl[2] = clip(hand.position[2] + POSITION_SCALE_M * clip(a[2], -1, 1), r.z[0], r.z[1]);
    // rotation: world-frame roll/pitch/yaw increments composed onto the current orientation
    const [roll, pitch, yaw] = hand.rpy;
    const delta = rotationFromRpy(
      ROTATION_SCALE_RAD * clip(a[3], -1, 1),
      ROTATION_SCALE_RAD * clip(a[4], -1, 1),
      ROTATION_SCALE_RAD * clip(a[5], -1, 1),
    );
    const target = rpyFromRotation(multiply3(delta, rotationFromRpy(roll, pitch, yaw)), yaw);
    ctrl[3] = clip(target[2], r.yaw[0], r.yaw[1]);
    ctrl[4] = clip(target[1], r.pitch[0], r.pitch[1]);
    ctrl[5] = clip(target[0], r.roll[0], r.roll[1]);
    const finger = (GRIPPER.fingerTravel * (1 - clip(a[6], -1, 1))) / 2;
    ctrl[6] = ctrl[7] = finger;
    for (let i = 0; i < PHYSICS.substeps; i++) mujoco.mj_step(model, data);
    // mj_step leaves positions one integration behind; forward makes poses and contacts match qpos
    mujoco.mj_forward(model, data);
    this.steps++;
    const q = data.qpos as Float64Array;
    if (!Number.isFinite(q[this.handQpos[0]]) || !Number.isFinite(q[this.handQpos[2]])) {
      throw new Error(`MuJoCo simulation diverged at step ${this.steps} of task '${this.task.id}' (seed ${this.seed}).`);
    }
    const success = this.isSuccess();
    return { success, done: success || this.steps >= this.task.maxSteps };
  }

  isSuccess(): boolean {
    this.assertOpen();
    return taskSucceeded(this.task, this.layout.scene, this.sceneState);
  }

  private camera(id: number, name: string): CameraParams {
    return cameraFromMujoco(this.model, this.data, id, this.imageSize, this.imageSize, name);
  }

  observe(options: { render?: boolean } = {}): Observation {
    this.assertOpen();
    const render = options.render ?? this.render;
    const hand = this.handState();
    const xq = this.data.xquat as Float64Array;
    const b = this.handBody;
    const camera = this.camera(this.agentviewId, 'agentview');
    const wristCamera = this.camera(this.wristId, 'wrist');
    let image: RgbImage;
    let wristImage: RgbImage | undefined;
    if (render) {
      const geoms = geomsFromMujoco(this.model, this.data);
      image = renderRgb(geoms, camera);
      if (this.wristImage) wristImage = renderRgb(geoms, wristCamera);
    } else {
      // not rendered: a black image of the right size (shared, do not write into it)
      this.blank ??= { width: this.imageSize, height: this.imageSize, data: new Uint8Array(this.imageSize * this.imageSize * 3) };
      image = this.blank;
    }
    return {
      instruction: this.task.instruction,
      image,
      ...(wristImage ? { wristImage } : {}),
      camera,
      wristCamera,
      eePosition: hand.position,
      eeQuaternion: [xq[4 * b], xq[4 * b + 1], xq[4 * b + 2], xq[4 * b + 3]],
      proprio: [...hand.position, ...hand.rpy, hand.opening],
      step: this.steps,
    };
  }

  privileged(): PrivilegedState {
    this.assertOpen();
    const contacts = this.allGripperContacts();
    const xq = this.data.xquat as Float64Array;
    const qvel = this.data.qvel as Float64Array;
    const objects: Record<string, ObjectState> = {};
    for (const name of this.objectNames) {
      const b = this.objectBody.get(name)!;
      const v = this.objectQvel.get(name)!;
      const c = contacts.get(name);
      objects[name] = {
        shape: this.objectShape.get(name)!,
        position: this.objectPosition(name),
        quaternion: [xq[4 * b], xq[4 * b + 1], xq[4 * b + 2], xq[4 * b + 3]],
        velocity: [qvel[v], qvel[v + 1], qvel[v + 2]],
        touchingLeftPad: c?.left ?? false,
        touchingRightPad: c?.right ?? false,
      };
    }
    const hand = this.handState();
    return {
      objects,
      fixtures: this.layout.scene.fixtures,
      goals: this.task.goals,
      goalsSatisfied: this.task.goals.map((g) => goalSatisfied(g, this.layout.scene, this.sceneState)),
      eePosition: hand.position,
      eeRollPitchYaw: hand.rpy,
      gripperOpening: hand.opening,
      step: this.steps,
    };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.data.delete();
    this.model.delete();
  }
}
