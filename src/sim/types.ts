// Contracts shared by the simulator's parts (env, renderer, runner, recorder) and by policies.
// Units: metres, radians, seconds; world frame z up, table top at z = 0 unless a task says otherwise.
import type { RgbImage } from '../io/image.js';

export type { RgbImage };

/** Pinhole camera in the OpenCV convention: camera x right, y down, z forward; pixel (u right, v down). */
export interface CameraParams {
  name: string;
  width: number;
  height: number;
  /** 3x3 row-major K = [fx 0 cx; 0 fy cy; 0 0 1]; a point on the optical axis lands at (cx, cy) = (W/2, H/2). */
  intrinsics: number[];
  /** 4x4 row-major world -> camera transform (OpenCV camera frame). */
  worldToCamera: number[];
}


/** What a policy sees at one control step. */
export interface Observation {
  instruction: string;
  /** agent-view camera image (224x224) */
  image: RgbImage;
  /** optional wrist camera image */
  wristImage?: RgbImage;
  camera: CameraParams;
  wristCamera?: CameraParams;
  /** end-effector (gripper centre between the fingers) world position [x,y,z] */
  eePosition: number[];
  /** end-effector orientation as a unit quaternion [w,x,y,z] (MuJoCo order) */
  eeQuaternion: number[];
  /** proprioception: ee position (3), ee roll-pitch-yaw (3), gripper opening (1, metres between fingers) */
  proprio: number[];
  step: number;
}

/** Entries of an action: delta position (3), delta rotation (3), gripper (1). */
export const ACTION_DIMS = 7;

/**
 * 7-D action, each entry in [-1, 1]: delta position (3), delta rotation (3, roll-pitch-yaw increments in the world
 * frame), gripper (-1 open, +1 close). Scaling to metres/radians per control step is documented in src/sim/env.ts.
 */
export type Action = number[];

export interface Policy {
  /** May be async (a model server, a worker); must return exactly 7 finite numbers. */
  act(observation: Observation): Action | Promise<Action>;
  /** Called at the start of each episode. */
  reset?(taskId: string, seed: number): void | Promise<void>;
  /**
   * The action a learner should imitate for the observation last passed to act(), when it differs from the action
   * taken: a noisy expert returns its command before noise and perturbations (DART-style labels: the executed noise
   * makes the demonstrations visit off-course states, the label says how to recover from them).
   */
  label?(): Action | undefined;
}

export type SuiteName = 'spatial' | 'object' | 'goal' | 'long';

export interface TaskInfo {
  id: string;
  suite: SuiteName;
  instruction: string;
  maxSteps: number;
}

export interface StepResult {
  success: boolean;
  /** true when success, or the step limit is reached */
  done: boolean;
}

/** One episode of one task in MuJoCo; created by createEnv(taskId, seed) in src/sim/env.ts. */
export interface Env {
  readonly task: TaskInfo;
  readonly seed: number;
  /** Observation of the current state (renders the cameras). */
  observe(options?: { render?: boolean }): Observation;
  /** Apply one 7-D action for one control step (several physics substeps). Throws on an invalid action. */
  step(action: Action): StepResult;
  /** Success predicate on the current simulator state. */
  isSuccess(): boolean;
  readonly stepCount: number;
  /** Frees the MuJoCo model and data. */
  close(): void;
}

export interface EpisodeResult {
  taskId: string;
  seed: number;
  success: boolean;
  steps: number;
  /** set when the episode ended early: invalid action, policy error */
  failureReason?: string;
  wallMs: number;
}
