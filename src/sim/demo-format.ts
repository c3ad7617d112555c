// The on-disk layout of recorded demonstrations (docs/demonstrations.md is the user-facing description).
// One JSON file per episode holds the low-dim data; its frames sit in a raw uint8 file beside it, [T, H, W, 3],
// so a reader can map one episode at a time without parsing pixels out of JSON.
import { closeSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Action, CameraParams, RgbImage } from './types.js';

export const DEMO_FORMAT = 'sqap-vla-demonstrations';
export const DEMO_FORMAT_VERSION = 1;

export const ACTION_NAMES = ['dx', 'dy', 'dz', 'droll', 'dpitch', 'dyaw', 'gripper'];
export const PROPRIO_NAMES = ['ee_x', 'ee_y', 'ee_z', 'ee_roll', 'ee_pitch', 'ee_yaw', 'gripper_opening_m'];

/** Where the frames of one camera are: a raw file of `shape` uint8 values; frame t starts at offsets[t]. */
export interface FramesEntry {
  file: string;
  dtype: 'uint8';
  /** [T, H, W, 3] */
  shape: [number, number, number, number];
  frame_bytes: number;
  offsets: number[];
}

/** Contents of episode_NNNNNN.json; step t pairs the observation at t with the action taken at t. */
export interface EpisodeFile {
  format_version: number;
  index: number;
  task_id: string;
  suite: string;
  seed: number;
  instruction: string;
  success: boolean;
  /** T: number of actions taken */
  steps: number;
  failure_reason?: string;
  camera: CameraParams;
  wrist_camera?: CameraParams;
  /** [T, 7] in the env's [-1, 1] action space: the actions taken */
  actions: number[][];
  /**
   * [T, 7] the expert's command at each step before its noise and perturbations (written when the recording policy
   * gives labels, as the scripted experts do): the behaviour-cloning target
   */
  expert_actions?: number[][];
  /** [T, 7] ee xyz, ee roll-pitch-yaw, gripper opening (m) */
  proprio: number[][];
  /** [T, 3] */
  ee_position: number[][];
  /** [T, 4] w, x, y, z */
  ee_quaternion: number[][];
  frames: FramesEntry;
  wrist_frames?: FramesEntry;
  /**
   * privileged ground truth, never part of a policy's input: each object's world position [T, 3] at each step's
   * observation, and each fixture's [x, y, 0]; train's auxiliary vision targets read them
   */
  object_positions?: Record<string, number[][]>;
  fixture_positions?: Record<string, number[]>;
}

/** One row of meta.json's episode index. */
export interface EpisodeIndexEntry {
  index: number;
  file: string;
  task_id: string;
  seed: number;
  steps: number;
  success: boolean;
}

/** What one recorded episode holds in memory before it is written. */
export interface EpisodeRecording {
  index: number;
  taskId: string;
  suite: string;
  seed: number;
  instruction: string;
  success: boolean;
  failureReason?: string;
  camera: CameraParams;
  wristCamera?: CameraParams;
  actions: Action[];
  /** the recording policy's labels (Policy.label), when it gave one for every step */
  expertActions?: Action[];
  proprio: number[][];
  eePosition: number[][];
  eeQuaternion: number[][];
  frames: RgbImage[];
  wristFrames?: RgbImage[];
  /** privileged: object name -> [T, 3] world positions at each observation */
  objectPositions?: Record<string, number[][]>;
  /** privileged: fixture name -> [x, y, 0] */
  fixturePositions?: Record<string, number[]>;
}

export function episodeBaseName(index: number): string {
  return `episode_${String(index).padStart(6, '0')}`;
}

function writeFrames(path: string, frames: RgbImage[], file: string, fallbackCamera: CameraParams): FramesEntry {
  const height = frames[0]?.height ?? fallbackCamera.height;
  const width = frames[0]?.width ?? fallbackCamera.width;
  const frameBytes = width * height * 3;
  const fd = openSync(path, 'w');
  try {
    for (const frame of frames) {
      if (frame.width !== width || frame.height !== height || frame.data.length !== frameBytes) {
        throw new Error(`frame size ${frame.width}x${frame.height} differs from the episode's ${width}x${height}`);
      }
      writeSync(fd, frame.data);
    }
  } finally {
    closeSync(fd);
  }
  return {
    file,
    dtype: 'uint8',
    shape: [frames.length, height, width, 3],
    frame_bytes: frameBytes,
    offsets: frames.map((_, t) => t * frameBytes),
  };
}

/** Writes episode_NNNNNN.json and its .rgb frames into `dir`; returns the index entry for meta.json. */
export function writeEpisode(dir: string, episode: EpisodeRecording): EpisodeIndexEntry {
  const base = episodeBaseName(episode.index);
  const frames = writeFrames(join(dir, `${base}.rgb`), episode.frames, `${base}.rgb`, episode.camera);
  const wristFrames =
    episode.wristFrames && episode.wristCamera
      ? writeFrames(join(dir, `${base}.wrist.rgb`), episode.wristFrames, `${base}.wrist.rgb`, episode.wristCamera)
      : undefined;
  const file: EpisodeFile = {
    format_version: DEMO_FORMAT_VERSION,
    index: episode.index,
    task_id: episode.taskId,
    suite: episode.suite,
    seed: episode.seed,
    instruction: episode.instruction,
    success: episode.success,
    steps: episode.actions.length,
    ...(episode.failureReason !== undefined ? { failure_reason: episode.failureReason } : {}),
    camera: episode.camera,
    ...(episode.wristCamera ? { wrist_camera: episode.wristCamera } : {}),
    actions: episode.actions,
    ...(episode.expertActions ? { expert_actions: episode.expertActions } : {}),
    proprio: episode.proprio,
    ee_position: episode.eePosition,
    ee_quaternion: episode.eeQuaternion,
    frames,
    ...(wristFrames ? { wrist_frames: wristFrames } : {}),
    ...(episode.objectPositions ? { object_positions: episode.objectPositions, fixture_positions: episode.fixturePositions ?? {} } : {}),
  };
  writeFileSync(join(dir, `${base}.json`), JSON.stringify(file));
  return {
    index: episode.index,
    file: `${base}.json`,
    task_id: episode.taskId,
    seed: episode.seed,
    steps: file.steps,
    success: episode.success,
  };
}

function readFrames(dir: string, entry: FramesEntry): RgbImage[] {
  const bytes = readFileSync(join(dir, entry.file));
  const [count, height, width] = entry.shape;
  if (bytes.length !== count * entry.frame_bytes) {
    throw new Error(`${entry.file} has ${bytes.length} bytes, expected ${count} frames of ${entry.frame_bytes}`);
  }
  const data = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
  return entry.offsets.map((offset) => ({ width, height, data: data.subarray(offset, offset + entry.frame_bytes) }));
}

/** One episode read back: the JSON's fields in camelCase, frames as views into one buffer. */
export interface DemonstrationEpisode extends Omit<EpisodeRecording, 'frames' | 'wristFrames'> {
  steps: number;
  frames: RgbImage[];
  wristFrames?: RgbImage[];
}

export function readEpisode(dir: string, file: string, options: { frames?: boolean } = {}): DemonstrationEpisode {
  const parsed = JSON.parse(readFileSync(join(dir, file), 'utf8')) as EpisodeFile;
  if (parsed.format_version !== DEMO_FORMAT_VERSION) {
    throw new Error(`${file} has format_version ${parsed.format_version}; this reader knows ${DEMO_FORMAT_VERSION}`);
  }
  const withFrames = options.frames ?? true;
  return {
    index: parsed.index,
    taskId: parsed.task_id,
    suite: parsed.suite,
    seed: parsed.seed,
    instruction: parsed.instruction,
    success: parsed.success,
    steps: parsed.steps,
    ...(parsed.failure_reason !== undefined ? { failureReason: parsed.failure_reason } : {}),
    camera: parsed.camera,
    ...(parsed.wrist_camera ? { wristCamera: parsed.wrist_camera } : {}),
    actions: parsed.actions,
    ...(parsed.expert_actions ? { expertActions: parsed.expert_actions } : {}),
    proprio: parsed.proprio,
    eePosition: parsed.ee_position,
    eeQuaternion: parsed.ee_quaternion,
    frames: withFrames ? readFrames(dir, parsed.frames) : [],
    ...(parsed.object_positions ? { objectPositions: parsed.object_positions, fixturePositions: parsed.fixture_positions ?? {} } : {}),
    ...(withFrames && parsed.wrist_frames ? { wristFrames: readFrames(dir, parsed.wrist_frames) } : {}),
  };
}
