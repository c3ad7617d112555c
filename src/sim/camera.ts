// Pinhole cameras in the OpenCV convention (x right, y down, z forward) built from MuJoCo cameras or eye/target,
// and projection of world points to pixels. Pixel (i, j) covers [i, i+1) x [j, j+1); its centre is (i+0.5, j+0.5).
import type { MjData, MjModel } from 'mujoco-js';
import type { CameraParams } from './types.js';

export interface ProjectedPoint {
  /** pixel coordinates (u right, v down) */
  u: number;
  v: number;
  /** distance along the camera's optical axis (metres); <= 0 behind the camera */
  depth: number;
  /** in front of the camera and inside the image */
  visible: boolean;
}

const DEG_TO_RAD = Math.PI / 180;

/** Intrinsics (3x3 row-major) for square pixels, principal point at the image centre. */
export function intrinsicsFromFovy(fovyDeg: number, width: number, height: number): number[] {
  const fy = height / 2 / Math.tan((fovyDeg * DEG_TO_RAD) / 2);
  return [fy, 0, width / 2, 0, fy, height / 2, 0, 0, 1];
}

/**
 * 4x4 row-major world -> OpenCV camera transform from a camera position and its OpenCV axes expressed in world
 * coordinates (the rows of the rotation).
 */
function worldToCameraFromAxes(position: number[], xAxis: number[], yAxis: number[], zAxis: number[]): number[] {
  const rows = [xAxis, yAxis, zAxis];
  const out: number[] = [];
  for (const r of rows) out.push(r[0], r[1], r[2], -(r[0] * position[0] + r[1] * position[1] + r[2] * position[2]));
  out.push(0, 0, 0, 1);
  return out;
}

/**
 * CameraParams of MuJoCo camera `cameraId` in the current state (needs mj_forward/mj_kinematics first).
 * MuJoCo's camera frame (cam_xmat columns, row-major 3x3) has x right, y up and looks along -z; OpenCV's is
 * (x, -y, -z) of it. Vertical field of view cam_fovy in degrees.
 */
export function cameraFromMujoco(
  model: MjModel,
  data: MjData,
  cameraId: number,
  width: number,
  height: number,
  name?: string,
): CameraParams {
  if (!(cameraId >= 0 && cameraId < model.ncam)) {
    throw new Error(`Camera id ${cameraId} is out of range: the model has ${model.ncam} cameras.`);
  }
  const xpos = data.cam_xpos as ArrayLike<number>; // (ncam, 3)
  const xmat = data.cam_xmat as ArrayLike<number>; // (ncam, 9), row-major, columns = camera axes in world
  const fovy = (model.cam_fovy as ArrayLike<number>)[cameraId]; // degrees
  const p = 3 * cameraId;
  const m = 9 * cameraId;
  const position = [xpos[p], xpos[p + 1], xpos[p + 2]];
  const column = (c: number, sign: number) => [sign * xmat[m + c], sign * xmat[m + 3 + c], sign * xmat[m + 6 + c]];
  return {
    name: name ?? `camera${cameraId}`,
    width,
    height,
    intrinsics: intrinsicsFromFovy(fovy, width, height),
    worldToCamera: worldToCameraFromAxes(position, column(0, 1), column(1, -1), column(2, -1)),
  };
}

function normalize(v: number[]): number[] {
  const n = Math.hypot(v[0], v[1], v[2]);
  if (!(n > 0)) throw new Error('Cannot normalize a zero-length vector.');
  return [v[0] / n, v[1] / n, v[2] / n];
}

function cross(a: number[], b: number[]): number[] {
  return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
}

/** Camera at `eye` looking at `target`, with `up` (default world +z) pointing up in the image. */
export function lookAtCamera(options: {
  eye: number[];
  target: number[];
  up?: number[];
  fovyDeg: number;
  width: number;
  height: number;
  name?: string;
}): CameraParams {
  const { eye, target, fovyDeg, width, height } = options;
  const forward = normalize([target[0] - eye[0], target[1] - eye[1], target[2] - eye[2]]);
  const right = normalize(cross(forward, options.up ?? [0, 0, 1])); // fails when looking along `up`
  const down = cross(forward, right);
  return {
    name: options.name ?? 'lookat',
    width,
    height,
    intrinsics: intrinsicsFromFovy(fovyDeg, width, height),
    worldToCamera: worldToCameraFromAxes(eye, right, down, forward),
  };
}

/** World point [x, y, z] -> OpenCV camera frame. */
export function worldToCameraPoint(camera: CameraParams, point: number[]): number[] {
  const T = camera.worldToCamera;
  const [x, y, z] = point;
  return [
    T[0] * x + T[1] * y + T[2] * z + T[3],
    T[4] * x + T[5] * y + T[6] * z + T[7],
    T[8] * x + T[9] * y + T[10] * z + T[11],
  ];
}

/** Camera position in world coordinates (-R^T t). */
export function cameraPosition(camera: CameraParams): number[] {
  const T = camera.worldToCamera;
  return [0, 1, 2].map((c) => -(T[c] * T[3] + T[4 + c] * T[7] + T[8 + c] * T[11]));
}

/** Projects world points (N x 3) to pixels. Points at or behind the camera get NaN pixel coordinates. */
export function projectPoints(camera: CameraParams, points: number[][]): ProjectedPoint[] {
  const K = camera.intrinsics;
  return points.map((point) => {
    const [x, y, z] = worldToCameraPoint(camera, point);
    if (!(z > 0)) return { u: NaN, v: NaN, depth: z, visible: false };
    const u = (K[0] * x + K[1] * y) / z + K[2];
    const v = (K[4] * y) / z + K[5];
    const visible = u >= 0 && u < camera.width && v >= 0 && v < camera.height;
    return { u, v, depth: z, visible };
  });
}
