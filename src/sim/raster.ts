// Z-buffered triangle rasterizer: camera-space meshes in, RGB8 + depth + per-pixel geom index out.
// Samples at pixel centres (i + 0.5, j + 0.5), the convention of projectPoints; perspective-correct interpolation
// of inverse depth (the depth test), Gouraud shade and checker coordinates.
import type { TriangleMesh } from './tessellate.js';

/** Near clipping plane, metres along the optical axis. */
export const NEAR_PLANE = 0.01;
/** Brightness factor of the dark squares of a checker pattern. */
const CHECKER_DARK = 0.78;

/** What the rasterizer needs of one geom this frame. */
export interface MeshDraw {
  mesh: TriangleMesh;
  /** 3x3 row-major geom -> camera rotation */
  rotation: Float64Array;
  /** geom origin in camera coordinates */
  translation: Float64Array;
  /** (n) per-vertex brightness factor, computed by the caller from the mesh normals */
  shade: Float64Array;
  /** linear RGB in [0, 1] */
  colour: number[];
  /** checker square size in the geom's local x-y (metres), 0 for none */
  checkerSize: number;
  /** written to the geom-index buffer */
  index: number;
  /** skip triangles facing away from the camera (closed shapes, one-sided planes) */
  cullBackFaces: boolean;
}

// One clipped polygon at most has 4 vertices; attributes per vertex: x, y, z (camera), shade, checker u, v.
const CLIP_STRIDE = 6;
const clipIn = new Float64Array(4 * CLIP_STRIDE);
const clipOut = new Float64Array(5 * CLIP_STRIDE);

// Depth and index buffers are reused by the next Rasterizer of the same size (one frame at a time per thread).
let scratchInverseDepth = new Float32Array(0);
let scratchGeomIndex = new Int32Array(0);

export class Rasterizer {
  readonly colour: Uint8Array; // (H, W, 3), owned by the caller after drawing
  /** (H, W) 1 / camera z, 0 = nothing drawn; valid until the next Rasterizer is created */
  readonly inverseDepth: Float32Array;
  /** (H, W) MeshDraw.index of the visible surface, -1 = background; valid until the next Rasterizer is created */
  readonly geomIndex: Int32Array;
  private camX = new Float64Array(0);
  private camY = new Float64Array(0);
  private camZ = new Float64Array(0);
  // Projected vertices of the current mesh, CLIP_STRIDE values each (see `tri`).
  private screen = new Float64Array(0);
  // Screen-space vertices of the triangle being drawn: u, v, 1/z, shade/z, checkerU/z, checkerV/z.
  private tri = new Float64Array(3 * CLIP_STRIDE);

  constructor(
    readonly width: number,
    readonly height: number,
    private readonly fx: number,
    private readonly fy: number,
    private readonly cx: number,
    private readonly cy: number,
    background: number[],
  ) {
    const pixels = width * height;
    this.colour = new Uint8Array(pixels * 3);
    if (scratchInverseDepth.length !== pixels) {
      scratchInverseDepth = new Float32Array(pixels);
      scratchGeomIndex = new Int32Array(pixels);
    }
    this.inverseDepth = scratchInverseDepth.fill(0);
    this.geomIndex = scratchGeomIndex.fill(-1);
    const bg = background.map((c) => toByte(c));
    this.colour.set(bg, 0);
    for (let filled = 3; filled < this.colour.length; filled *= 2) this.colour.copyWithin(filled, 0, filled);
  }

  drawMesh(draw: MeshDraw): void {
    const { positions, indices } = draw.mesh;
    const n = positions.length / 3;
    if (this.camX.length < n) {
      this.camX = new Float64Array(n);
      this.camY = new Float64Array(n);
      this.camZ = new Float64Array(n);
      this.screen = new Float64Array(n * CLIP_STRIDE);
    }
    const R = draw.rotation;
    const t = draw.translation;
    const { camX, camY, camZ, screen, fx, fy, cx, cy } = this;
    const shade = draw.shade;
    // Camera-space and projected vertices; those in front of the near plane are projected once per mesh.
    for (let i = 0; i < n; i++) {
      const x = positions[3 * i];
      const y = positions[3 * i + 1];
      const z = positions[3 * i + 2];
      const X = (camX[i] = R[0] * x + R[1] * y + R[2] * z + t[0]);
      const Y = (camY[i] = R[3] * x + R[4] * y + R[5] * z + t[1]);
      const Z = (camZ[i] = R[6] * x + R[7] * y + R[8] * z + t[2]);
      if (Z < NEAR_PLANE) continue;
      const inverseZ = 1 / Z;
      const o = i * CLIP_STRIDE;
      screen[o] = fx * X * inverseZ + cx;
      screen[o + 1] = fy * Y * inverseZ + cy;
      screen[o + 2] = inverseZ;
      screen[o + 3] = shade[i] * inverseZ;
      screen[o + 4] = x * inverseZ;
      screen[o + 5] = y * inverseZ;
    }
    for (let k = 0; k < indices.length; k += 3) {
      const a = indices[k];
      const b = indices[k + 1];
      const c = indices[k + 2];
      const za = camZ[a];
      const zb = camZ[b];
      const zc = camZ[c];
      if (za < NEAR_PLANE && zb < NEAR_PLANE && zc < NEAR_PLANE) continue;
      if (za >= NEAR_PLANE && zb >= NEAR_PLANE && zc >= NEAR_PLANE) {
        this.fillTriangle(screen, a * CLIP_STRIDE, b * CLIP_STRIDE, c * CLIP_STRIDE, draw);
      } else {
        this.loadVertex(clipIn, 0, a, draw);
        this.loadVertex(clipIn, 1, b, draw);
        this.loadVertex(clipIn, 2, c, draw);
        this.drawClipped(clipOut, clipNear(clipIn, 3, clipOut), draw);
      }
    }
  }

  private loadVertex(out: Float64Array, slot: number, vertex: number, draw: MeshDraw): void {
    const o = slot * CLIP_STRIDE;
    const p = draw.mesh.positions;
    out[o] = this.camX[vertex];
    out[o + 1] = this.camY[vertex];
    out[o + 2] = this.camZ[vertex];
    out[o + 3] = draw.shade[vertex];
    out[o + 4] = p[3 * vertex];
    out[o + 5] = p[3 * vertex + 1];
  }

  /** Projects a convex camera-space polygon (all z >= near) and draws it as a triangle fan. */
  private drawClipped(polygon: Float64Array, count: number, draw: MeshDraw): void {
    const tri = this.tri;
    for (let f = 1; f + 1 < count; f++) {
      for (let s = 0; s < 3; s++) {
        const i = (s === 0 ? 0 : f + s - 1) * CLIP_STRIDE; // fan: vertices 0, f, f + 1
        const o = s * CLIP_STRIDE;
        const inverseZ = 1 / polygon[i + 2];
        tri[o] = this.fx * polygon[i] * inverseZ + this.cx;
        tri[o + 1] = this.fy * polygon[i + 1] * inverseZ + this.cy;
        tri[o + 2] = inverseZ;
        tri[o + 3] = polygon[i + 3] * inverseZ;
        tri[o + 4] = polygon[i + 4] * inverseZ;
        tri[o + 5] = polygon[i + 5] * inverseZ;
      }
      this.fillTriangle(tri, 0, CLIP_STRIDE, 2 * CLIP_STRIDE, draw);
    }
  }

  /**
   * Fills the triangle whose projected vertices start at offsets o0, o1, o2 of `vertices` (CLIP_STRIDE layout).
   * Front faces have negative signed area in (u right, v down) pixel coordinates.
   */
  private fillTriangle(vertices: Float64Array, o0: number, oA: number, oB: number, draw: MeshDraw): void {
    const tri = vertices;
    let area = (tri[oA] - tri[o0]) * (tri[oB + 1] - tri[o0 + 1]) - (tri[oA + 1] - tri[o0 + 1]) * (tri[oB] - tri[o0]);
    if (area === 0 || (draw.cullBackFaces && area > 0)) return;
    // Order the vertices so the signed area is positive.
    const o1 = area < 0 ? oB : oA;
    const o2 = area < 0 ? oA : oB;
    area = Math.abs(area);
    const x0 = tri[o0], y0 = tri[o0 + 1];
    const x1 = tri[o1], y1 = tri[o1 + 1];
    const x2 = tri[o2], y2 = tri[o2 + 1];
    const W = this.width;
    // Pixels whose centre (i + 0.5) can be inside.
    const minX = Math.max(0, Math.ceil(Math.min(x0, x1, x2) - 0.5));
    const maxX = Math.min(W - 1, Math.floor(Math.max(x0, x1, x2) - 0.5));
    const minY = Math.max(0, Math.ceil(Math.min(y0, y1, y2) - 0.5));
    const maxY = Math.min(this.height - 1, Math.floor(Math.max(y0, y1, y2) - 0.5));
    if (minX > maxX || minY > maxY) return;
    const inverseArea = 1 / area;
    // Barycentric weight of vertex k is its opposite edge function / area; stepping x adds dX, stepping y adds dY.
    const e0dX = -(y2 - y1), e0dY = x2 - x1;
    const e1dX = -(y0 - y2), e1dY = x0 - x2;
    const e2dX = -(y1 - y0), e2dY = x1 - x0;
    const px = minX + 0.5;
    const py = minY + 0.5;
    let e0Row = (x2 - x1) * (py - y1) - (y2 - y1) * (px - x1);
    let e1Row = (x0 - x2) * (py - y2) - (y0 - y2) * (px - x2);
    let e2Row = (x1 - x0) * (py - y0) - (y1 - y0) * (px - x0);
    // Attributes divided by z at the three vertices (perspective-correct interpolation).
    const iz0 = tri[o0 + 2], iz1 = tri[o1 + 2], iz2 = tri[o2 + 2];
    const s0 = tri[o0 + 3], s1 = tri[o1 + 3], s2 = tri[o2 + 3];
    const u0 = tri[o0 + 4], u1 = tri[o1 + 4], u2 = tri[o2 + 4];
    const v0 = tri[o0 + 5], v1 = tri[o1 + 5], v2 = tri[o2 + 5];
    const [red, green, blue] = draw.colour;
    const checker = draw.checkerSize > 0 ? 1 / draw.checkerSize : 0;
    const { colour, inverseDepth, geomIndex } = this;
    for (let y = minY; y <= maxY; y++) {
      let e0 = e0Row, e1 = e1Row, e2 = e2Row;
      let p = y * W + minX;
      for (let x = minX; x <= maxX; x++, p++, e0 += e0dX, e1 += e1dX, e2 += e2dX) {
        if (e0 < 0 || e1 < 0 || e2 < 0) continue;
        const w0 = e0 * inverseArea, w1 = e1 * inverseArea, w2 = e2 * inverseArea;
        const iz = w0 * iz0 + w1 * iz1 + w2 * iz2;
        if (iz <= inverseDepth[p]) continue;
        inverseDepth[p] = iz;
        geomIndex[p] = draw.index;
        let shade = (w0 * s0 + w1 * s1 + w2 * s2) / iz;
        if (checker !== 0) {
          const cu = Math.floor(((w0 * u0 + w1 * u1 + w2 * u2) / iz) * checker);
          const cv = Math.floor(((w0 * v0 + w1 * v1 + w2 * v2) / iz) * checker);
          if (((cu + cv) & 1) !== 0) shade *= CHECKER_DARK;
        }
        colour[3 * p] = toByte(red * shade);
        colour[3 * p + 1] = toByte(green * shade);
        colour[3 * p + 2] = toByte(blue * shade);
      }
      e0Row += e0dY;
      e1Row += e1dY;
      e2Row += e2dY;
    }
  }
}

/** [0, 1] -> byte, clamped and rounded. */
function toByte(value: number): number {
  return value <= 0 ? 0 : value >= 1 ? 255 : (value * 255 + 0.5) | 0;
}

/** Sutherland-Hodgman against z = NEAR_PLANE; returns the output vertex count (0, 3 or 4). */
function clipNear(input: Float64Array, count: number, output: Float64Array): number {
  let out = 0;
  for (let i = 0; i < count; i++) {
    const a = i * CLIP_STRIDE;
    const b = ((i + 1) % count) * CLIP_STRIDE;
    const aInside = input[a + 2] >= NEAR_PLANE;
    const bInside = input[b + 2] >= NEAR_PLANE;
    if (aInside) {
      for (let k = 0; k < CLIP_STRIDE; k++) output[out * CLIP_STRIDE + k] = input[a + k];
      out++;
    }
    if (aInside !== bInside) {
      const s = (NEAR_PLANE - input[a + 2]) / (input[b + 2] - input[a + 2]);
      for (let k = 0; k < CLIP_STRIDE; k++) output[out * CLIP_STRIDE + k] = input[a + k] + s * (input[b + k] - input[a + k]);
      out++;
    }
  }
  return out;
}
