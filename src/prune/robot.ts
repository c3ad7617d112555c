// Robot context for SQAP's robot-aware protection: where the end effector is in the input image, either given
// directly as a pixel or as a 3-D position projected with the calibrated camera. The camera type is structurally
// the testbed's CameraParams (src/sim/types.ts) and the JSON it writes; prune does not import sim.
import fs from 'node:fs';
import { UserError } from '../errors.js';
import type { ImagePoint } from './grid.js';

/** Pinhole camera, OpenCV convention (x right, y down, z forward); same fields as the testbed's CameraParams. */
export interface PinholeCamera {
  name?: string;
  width: number;
  height: number;
  /** 3x3 row-major [fx s cx; 0 fy cy; 0 0 1] */
  intrinsics: number[];
  /** 4x4 row-major world -> camera */
  worldToCamera: number[];
}

/**
 * What the robot knows about itself at this step: the end effector's pixel in the input image (u right, v down),
 * or its world position (from forward kinematics) and the calibrated camera that took the image.
 */
export type RobotContext = { eefPixel: [number, number] } | { eef: [number, number, number]; camera: PinholeCamera };

/** camera pixel of a world point, or null when it is at or behind the camera */
export function projectToPixel(camera: PinholeCamera, point: readonly number[]): [number, number] | null {
  const T = camera.worldToCamera;
  const K = camera.intrinsics;
  const [x, y, z] = point;
  const cx = T[0] * x + T[1] * y + T[2] * z + T[3];
  const cy = T[4] * x + T[5] * y + T[6] * z + T[7];
  const cz = T[8] * x + T[9] * y + T[10] * z + T[11];
  if (!(cz > 0)) return null;
  return [(K[0] * cx + K[1] * cy) / cz + K[2], (K[4] * cy) / cz + K[5]];
}

/**
 * The end effector as a fraction of the image size (see grid.ts), or null when it cannot be seen (behind the
 * camera). A pixel is relative to `imageSize` (the input image); a projection to the camera's own width/height.
 */
export function eefImagePoint(context: RobotContext, imageSize: { width: number; height: number }): ImagePoint | null {
  if ('eefPixel' in context) return { x: context.eefPixel[0] / imageSize.width, y: context.eefPixel[1] / imageSize.height };
  const pixel = projectToPixel(context.camera, context.eef);
  return pixel ? { x: pixel[0] / context.camera.width, y: pixel[1] / context.camera.height } : null;
}

/**
 * Reads a camera JSON file: a CameraParams object as the testbed writes it, or any object with one under `camera`
 * (a recorded episode's JSON). Throws a one-line UserError when it is unreadable or malformed.
 */
export function readCameraFile(path: string): PinholeCamera {
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(path, 'utf8'));
  } catch (error) {
    throw new UserError(`cannot read camera file ${path}: ${(error as Error).message.split('\n')[0]}`);
  }
  const candidate = (json as { camera?: unknown } | null)?.camera ?? json;
  return parseCamera(candidate, path);
}

export function parseCamera(value: unknown, where: string): PinholeCamera {
  const c = value as Partial<PinholeCamera> | null;
  const numbers = (v: unknown, n: number) => Array.isArray(v) && v.length === n && v.every((e) => typeof e === 'number' && Number.isFinite(e));
  if (typeof c !== 'object' || c === null) throw new UserError(`${where}: a camera must be a JSON object with width, height, intrinsics, worldToCamera`);
  if (!(typeof c.width === 'number' && c.width > 0 && typeof c.height === 'number' && c.height > 0)) {
    throw new UserError(`${where}: camera needs positive numeric width and height`);
  }
  if (!numbers(c.intrinsics, 9)) throw new UserError(`${where}: camera intrinsics must be 9 numbers (3x3 row-major)`);
  if (!numbers(c.worldToCamera, 16)) throw new UserError(`${where}: camera worldToCamera must be 16 numbers (4x4 row-major)`);
  return { name: c.name, width: c.width, height: c.height, intrinsics: c.intrinsics!, worldToCamera: c.worldToCamera! };
}
