// Software renderer for MuJoCo scenes of primitive geoms (mujoco-js has no renderer): geoms -> triangles ->
// z-buffered rasterization (src/sim/raster.ts) with Gouraud Lambert + ambient shading from one directional light
// plus a weak headlight, and a checker pattern on planes so that depth is readable.
import type { MjData, MjModel } from 'mujoco-js';
import { NEAR_PLANE, Rasterizer } from './raster.js';
import { geomMesh, meshFromFaces, type GeomType, type TriangleMesh } from './tessellate.js';
import type { CameraParams, RgbImage } from './types.js';

export type { GeomType, TriangleMesh } from './tessellate.js';

/** A primitive geom in world coordinates, with MuJoCo's size semantics. */
export interface RenderGeom {
  type: GeomType;
  /**
   * box: half-extents (3); sphere: radius; capsule/cylinder: radius, half-length along local z; ellipsoid: radii (3);
   * plane: half-sizes in local x, y (0 = infinite, drawn INFINITE_PLANE_HALF_SIZE wide), visible from local +z;
   * mesh: unused (the triangles carry the shape).
   */
  size: number[];
  /** required for type 'mesh': its triangles in the geom frame (see meshFromFaces); ignored otherwise */
  triangles?: TriangleMesh;
  /** world position of the geom frame (metres) */
  pos: number[];
  /** 3x3 row-major geom -> world rotation, like MuJoCo's geom_xmat */
  mat: number[];
  /** colour in [0, 1]; alpha is ignored (drawn opaque) */
  rgba: number[];
  /** side of checker squares over the geom's local x-y, metres; 0 or absent = plain */
  checkerSize?: number;
  /** MuJoCo geom id, set by geomsFromMujoco (maps RenderedFrame.geomIndex back to the model) */
  geomId?: number;
}

export interface RenderOptions {
  /** RGB in [0, 1] */
  background?: number[];
  /** world direction the light travels in (need not be unit length) */
  lightDirection?: number[];
}

export interface RgbOptions extends RenderOptions {
  /** samples per pixel side, 1 to MAX_SUPERSAMPLE; default 1 (one sample at the pixel centre) */
  supersample?: number;
}

export const MAX_SUPERSAMPLE = 4;

export interface RenderedFrame {
  image: RgbImage;
  /** (H, W) row-major distance along the optical axis, metres; Infinity where nothing was drawn */
  depth: Float32Array;
  /** (H, W) row-major index into the geoms array of the visible surface; -1 where nothing was drawn */
  geomIndex: Int32Array;
}

export const DEFAULT_BACKGROUND = [0.6, 0.68, 0.76];
/** From above, slightly from the front-left of a camera looking along +x. */
export const DEFAULT_LIGHT_DIRECTION = [0.3, -0.4, -1];
/** Brightness = AMBIENT + DIFFUSE * max(0, n.l) + HEADLIGHT * max(0, n.v), clamped per channel. */
const AMBIENT = 0.3;
const DIFFUSE = 0.6;
const HEADLIGHT = 0.2;
/** Checker square for planes read from MuJoCo, metres. */
export const PLANE_CHECKER_SIZE = 0.1;

/** MuJoCo mjtGeom values of the geoms we draw; hfield (1) and sdf (8) are skipped. */
const MUJOCO_GEOM_TYPES: Record<number, GeomType> = {
  0: 'plane',
  2: 'sphere',
  3: 'capsule',
  4: 'ellipsoid',
  5: 'cylinder',
  6: 'box',
  7: 'mesh',
};

/** Triangles of each MuJoCo mesh, built once per model. */
const modelMeshes = new WeakMap<MjModel, Map<number, TriangleMesh>>();

function mujocoMesh(model: MjModel, meshId: number): TriangleMesh {
  let meshes = modelMeshes.get(model);
  if (!meshes) modelMeshes.set(model, (meshes = new Map()));
  let mesh = meshes.get(meshId);
  if (!mesh) {
    const vertexStart = (model.mesh_vertadr as ArrayLike<number>)[meshId];
    const vertexCount = (model.mesh_vertnum as ArrayLike<number>)[meshId];
    const faceStart = (model.mesh_faceadr as ArrayLike<number>)[meshId];
    const faceCount = (model.mesh_facenum as ArrayLike<number>)[meshId];
    const vertices = (model.mesh_vert as Float32Array).subarray(3 * vertexStart, 3 * (vertexStart + vertexCount));
    const faces = (model.mesh_face as Int32Array).subarray(3 * faceStart, 3 * (faceStart + faceCount)); // per-mesh ids
    mesh = meshFromFaces(vertices, faces);
    meshes.set(meshId, mesh);
  }
  return mesh;
}
/** A geom with exactly this rgba takes its material's colour (MuJoCo's rule). */
const MUJOCO_DEFAULT_RGBA = [0.5, 0.5, 0.5, 1];

/** Visible primitive geoms of the current state (needs mj_forward/mj_kinematics first). */
export function geomsFromMujoco(
  model: MjModel,
  data: MjData,
  options: { excludeGroups?: number[]; planeCheckerSize?: number } = {},
): RenderGeom[] {
  const excluded = new Set(options.excludeGroups ?? []);
  const planeChecker = options.planeCheckerSize ?? PLANE_CHECKER_SIZE;
  const types = model.geom_type as ArrayLike<number>; // (ngeom)
  const sizes = model.geom_size as ArrayLike<number>; // (ngeom, 3)
  const rgbas = model.geom_rgba as ArrayLike<number>; // (ngeom, 4)
  const groups = model.geom_group as ArrayLike<number>; // (ngeom)
  const materials = model.geom_matid as ArrayLike<number>; // (ngeom), -1 = none
  const materialRgbas = model.mat_rgba as ArrayLike<number>; // (nmat, 4)
  const dataIds = model.geom_dataid as ArrayLike<number>; // (ngeom), mesh id for mesh geoms
  const positions = data.geom_xpos as ArrayLike<number>; // (ngeom, 3)
  const rotations = data.geom_xmat as ArrayLike<number>; // (ngeom, 9)
  const geoms: RenderGeom[] = [];
  for (let g = 0; g < model.ngeom; g++) {
    const type = MUJOCO_GEOM_TYPES[types[g]];
    if (type === undefined || excluded.has(groups[g])) continue;
    let rgba = Array.from({ length: 4 }, (_, k) => rgbas[4 * g + k]);
    const material = materials[g];
    if (material >= 0 && rgba.every((c, k) => Math.abs(c - MUJOCO_DEFAULT_RGBA[k]) < 1e-6)) {
      rgba = Array.from({ length: 4 }, (_, k) => materialRgbas[4 * material + k]);
    }
    if (rgba[3] === 0) continue;
    geoms.push({
      type,
      size: [sizes[3 * g], sizes[3 * g + 1], sizes[3 * g + 2]],
      pos: [positions[3 * g], positions[3 * g + 1], positions[3 * g + 2]],
      mat: Array.from({ length: 9 }, (_, k) => rotations[9 * g + k]),
      rgba,
      checkerSize: type === 'plane' ? planeChecker : 0,
      geomId: g,
      ...(type === 'mesh' ? { triangles: mujocoMesh(model, dataIds[g]) } : {}),
    });
  }
  return geoms;
}

/** The triangles drawn for a geom, in its frame (cached per primitive type and size). */
export function geomTriangles(geom: RenderGeom): TriangleMesh {
  if (geom.type !== 'mesh') return geomMesh(geom.type, geom.size);
  if (!geom.triangles) throw new Error("A RenderGeom of type 'mesh' needs its triangles.");
  return geom.triangles;
}

function unit(v: number[]): number[] {
  const n = Math.hypot(v[0], v[1], v[2]);
  if (!(n > 0)) throw new Error('Light direction must be a non-zero 3-vector.');
  return [v[0] / n, v[1] / n, v[2] / n];
}

/** Per-vertex brightness from the mesh normals (geom frame) and light/view directions moved into the geom frame. */
function vertexShade(mesh: TriangleMesh, toLight: number[], toViewer: number[]): Float64Array {
  const n = mesh.normals;
  const shade = new Float64Array(n.length / 3);
  for (let i = 0; i < shade.length; i++) {
    const nx = n[3 * i], ny = n[3 * i + 1], nz = n[3 * i + 2];
    const diffuse = Math.max(0, nx * toLight[0] + ny * toLight[1] + nz * toLight[2]);
    const head = Math.max(0, nx * toViewer[0] + ny * toViewer[1] + nz * toViewer[2]);
    shade[i] = AMBIENT + DIFFUSE * diffuse + HEADLIGHT * head;
  }
  return shade;
}

/** True when the sphere (camera-space centre c, radius r) lies entirely outside the view frustum. */
function outsideFrustum(c: Float64Array, r: number, tanX: number, tanY: number): boolean {
  if (c[2] + r < NEAR_PLANE) return true;
  const kx = Math.hypot(1, tanX);
  const ky = Math.hypot(1, tanY);
  return (
    Math.abs(c[0]) - tanX * c[2] > r * kx || // left/right planes |x| = tanX z
    Math.abs(c[1]) - tanY * c[2] > r * ky
  );
}

function rasterize(geoms: RenderGeom[], camera: CameraParams, options: RenderOptions): Rasterizer {
  const { width, height } = camera;
  const K = camera.intrinsics;
  const T = camera.worldToCamera;
  const raster = new Rasterizer(width, height, K[0], K[4], K[2], K[5], options.background ?? DEFAULT_BACKGROUND);
  const toLightWorld = unit(options.lightDirection ?? DEFAULT_LIGHT_DIRECTION).map((c) => -c);
  const toViewerWorld = [-T[8], -T[9], -T[10]]; // minus the optical axis in world coordinates
  const tanX = Math.max(K[2], width - K[2]) / K[0];
  const tanY = Math.max(K[5], height - K[5]) / K[4];
  const rotation = new Float64Array(9);
  const translation = new Float64Array(3);
  geoms.forEach((geom, index) => {
    const mesh = geomTriangles(geom);
    const G = geom.mat;
    // Camera-from-geom: R = Rwc * G, t = Rwc * pos + twc.
    for (let r = 0; r < 3; r++) {
      for (let c = 0; c < 3; c++) {
        rotation[3 * r + c] = T[4 * r] * G[c] + T[4 * r + 1] * G[3 + c] + T[4 * r + 2] * G[6 + c];
      }
      translation[r] = T[4 * r] * geom.pos[0] + T[4 * r + 1] * geom.pos[1] + T[4 * r + 2] * geom.pos[2] + T[4 * r + 3];
    }
    if (outsideFrustum(translation, mesh.boundingRadius, tanX, tanY)) return;
    // World direction d in the geom frame is G^T d.
    const toGeom = (d: number[]) => [0, 1, 2].map((c) => G[c] * d[0] + G[3 + c] * d[1] + G[6 + c] * d[2]);
    raster.drawMesh({
      mesh,
      rotation,
      translation,
      shade: vertexShade(mesh, toGeom(toLightWorld), toGeom(toViewerWorld)),
      colour: geom.rgba,
      checkerSize: geom.checkerSize ?? 0,
      index,
      cullBackFaces: true,
    });
  });
  return raster;
}

/** Renders the geoms seen by `camera`: RGB image, depth and per-pixel geom index. */
export function renderFrame(geoms: RenderGeom[], camera: CameraParams, options: RenderOptions = {}): RenderedFrame {
  const raster = rasterize(geoms, camera, options);
  const inverseDepth = raster.inverseDepth;
  const depth = new Float32Array(inverseDepth.length);
  for (let p = 0; p < depth.length; p++) depth[p] = inverseDepth[p] > 0 ? 1 / inverseDepth[p] : Infinity;
  const image = { width: camera.width, height: camera.height, data: raster.colour };
  return { image, depth, geomIndex: raster.geomIndex.slice() };
}

/** Box filter: (H*f, W*f, 3) -> (H, W, 3). */
function downsample(colour: Uint8Array, width: number, height: number, factor: number): Uint8Array {
  const out = new Uint8Array(width * height * 3);
  const wideRow = width * factor * 3;
  const samples = factor * factor;
  for (let j = 0; j < height; j++) {
    for (let i = 0; i < width; i++) {
      for (let c = 0; c < 3; c++) {
        let sum = 0;
        for (let dj = 0; dj < factor; dj++) {
          const row = (j * factor + dj) * wideRow + i * factor * 3 + c;
          for (let di = 0; di < factor; di++) sum += colour[row + 3 * di];
        }
        out[3 * (j * width + i) + c] = Math.round(sum / samples);
      }
    }
  }
  return out;
}

/**
 * RGB8 image of the geoms seen by `camera`. With supersample f > 1, each pixel averages f x f samples spread over
 * its square (anti-aliasing; costs about f^2 times as much).
 */
export function renderRgb(geoms: RenderGeom[], camera: CameraParams, options: RgbOptions = {}): RgbImage {
  const factor = options.supersample ?? 1;
  if (!(Number.isInteger(factor) && factor >= 1 && factor <= MAX_SUPERSAMPLE)) {
    throw new Error(`supersample must be an integer from 1 to ${MAX_SUPERSAMPLE}, got ${factor}.`);
  }
  const { width, height } = camera;
  if (factor === 1) return { width, height, data: rasterize(geoms, camera, options).colour };
  // Pixel coordinates scale by f: K' = diag(f, f, 1) K.
  const K = camera.intrinsics;
  const intrinsics = [...K.slice(0, 6).map((k) => k * factor), ...K.slice(6)];
  const fine = { ...camera, width: width * factor, height: height * factor, intrinsics };
  return { width, height, data: downsample(rasterize(geoms, fine, options).colour, width, height, factor) };
}

/** (H, W) depth along the optical axis in metres, Infinity where nothing was drawn. */
export function renderDepth(geoms: RenderGeom[], camera: CameraParams): Float32Array {
  return renderFrame(geoms, camera).depth;
}
