// Triangle meshes of MuJoCo primitive geoms in the geom's local frame, cached per (type, size).
// Round shapes are surfaces of revolution about local z; their vertices are pushed out slightly so that the
// polygonal silhouette has the same area as the true circle (a plain inscribed 32-gon loses 0.6%).

/** Primitives tessellated here; 'mesh' geoms bring their own triangles (meshFromFaces). */
export type PrimitiveType = 'plane' | 'sphere' | 'capsule' | 'ellipsoid' | 'cylinder' | 'box';
export type GeomType = PrimitiveType | 'mesh';

export interface TriangleMesh {
  /** (n, 3) vertex positions in the geom frame, metres */
  positions: Float64Array;
  /** (n, 3) unit outward normals in the geom frame */
  normals: Float64Array;
  /** (t, 3) vertex indices; counter-clockwise seen from outside */
  indices: Uint32Array;
  /** radius of a geom-centred sphere enclosing the mesh, metres (for frustum culling) */
  boundingRadius: number;
}

/** Segments around the axis of revolution; 32 keeps a 100 px wide sphere within 0.3 px of a circle. */
export const ROUND_SEGMENTS = 32;
/** Latitude bands from pole to pole (same angular step as ROUND_SEGMENTS). */
const SPHERE_BANDS = ROUND_SEGMENTS / 2;
/** Half-size drawn for an infinite plane (MuJoCo size 0), metres. */
export const INFINITE_PLANE_HALF_SIZE = 50;
/** Radial scale so the regular ROUND_SEGMENTS-gon has the area of its circle: sqrt(2π / (n sin(2π/n))). */
const EQUAL_AREA_SCALE = Math.sqrt((2 * Math.PI) / (ROUND_SEGMENTS * Math.sin((2 * Math.PI) / ROUND_SEGMENTS)));
const MAX_CACHED_MESHES = 4096;

class MeshBuilder {
  positions: number[] = [];
  normals: number[] = [];
  indices: number[] = [];
  vertex(p: number[], n: number[]): number {
    this.positions.push(p[0], p[1], p[2]);
    this.normals.push(n[0], n[1], n[2]);
    return this.positions.length / 3 - 1;
  }
  triangle(a: number, b: number, c: number): void {
    this.indices.push(a, b, c);
  }
  build(): TriangleMesh {
    let r2 = 0;
    for (let i = 0; i < this.positions.length; i += 3) {
      r2 = Math.max(r2, this.positions[i] ** 2 + this.positions[i + 1] ** 2 + this.positions[i + 2] ** 2);
    }
    return {
      positions: Float64Array.from(this.positions),
      normals: Float64Array.from(this.normals),
      indices: Uint32Array.from(this.indices),
      boundingRadius: Math.sqrt(r2),
    };
  }
}

/** One profile point of a surface of revolution: distance from the axis, height, and normal (radial, axial). */
interface ProfilePoint {
  radius: number;
  z: number;
  normalRadial: number;
  normalAxial: number;
}

/** Revolves a profile, ordered from top (+z) to bottom, about local z. Rows of radius 0 collapse to one vertex. */
function lathe(profile: ProfilePoint[], builder = new MeshBuilder()): MeshBuilder {
  const rows: number[][] = profile.map((p) => {
    const count = p.radius === 0 ? 1 : ROUND_SEGMENTS;
    const row: number[] = [];
    for (let k = 0; k < count; k++) {
      const angle = (2 * Math.PI * k) / ROUND_SEGMENTS;
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      row.push(builder.vertex([p.radius * c, p.radius * s, p.z], [p.normalRadial * c, p.normalRadial * s, p.normalAxial]));
    }
    return row;
  });
  for (let r = 0; r + 1 < rows.length; r++) {
    const top = rows[r];
    const bottom = rows[r + 1];
    if (top.length === 1 && bottom.length === 1) continue;
    const flat = profile[r].radius === profile[r + 1].radius && profile[r].z === profile[r + 1].z;
    if (flat) continue; // a crease: same ring twice with different normals
    for (let k = 0; k < ROUND_SEGMENTS; k++) {
      const k1 = (k + 1) % ROUND_SEGMENTS;
      const t0 = top[top.length === 1 ? 0 : k];
      const t1 = top[top.length === 1 ? 0 : k1];
      const b0 = bottom[bottom.length === 1 ? 0 : k];
      const b1 = bottom[bottom.length === 1 ? 0 : k1];
      // Outward normal = (b0 - t0) x (b1 - t0) points away from the axis for a top-to-bottom profile.
      if (b0 !== b1) builder.triangle(t0, b0, b1);
      if (t0 !== t1) builder.triangle(t0, b1, t1);
    }
  }
  return builder;
}

/** Profile of a sphere of `radius` (equal-area scaled), hemisphere by hemisphere; `split` shifts them apart. */
function sphereProfile(radius: number, split = 0): ProfilePoint[] {
  const points: ProfilePoint[] = [];
  const r = radius * EQUAL_AREA_SCALE;
  for (let band = 0; band <= SPHERE_BANDS; band++) {
    const polar = (Math.PI * band) / SPHERE_BANDS;
    const s = band === 0 || band === SPHERE_BANDS ? 0 : Math.sin(polar);
    const c = Math.cos(polar);
    const point = (shift: number) => ({ radius: r * s, z: r * c + shift, normalRadial: s, normalAxial: c });
    if (split > 0 && 2 * band === SPHERE_BANDS) points.push(point(split), point(-split));
    else points.push(point(2 * band < SPHERE_BANDS ? split : -split));
  }
  return points;
}

function boxMesh(hx: number, hy: number, hz: number): TriangleMesh {
  const b = new MeshBuilder();
  const half = [hx, hy, hz];
  for (let axis = 0; axis < 3; axis++) {
    for (const sign of [1, -1]) {
      const u = (axis + 1) % 3;
      const v = (axis + 2) % 3;
      const normal = [0, 0, 0];
      normal[axis] = sign;
      const corner = (su: number, sv: number) => {
        const p = [0, 0, 0];
        p[axis] = sign * half[axis];
        p[u] = su * half[u];
        p[v] = sv * half[v];
        return b.vertex(p, normal);
      };
      const q = [corner(-1, -1), corner(1, -1), corner(1, 1), corner(-1, 1)]; // CCW about +axis (u x v = axis)
      if (sign > 0) b.triangle(q[0], q[1], q[2]), b.triangle(q[0], q[2], q[3]);
      else b.triangle(q[0], q[2], q[1]), b.triangle(q[0], q[3], q[2]);
    }
  }
  return b.build();
}

function cylinderMesh(radius: number, halfLength: number): TriangleMesh {
  const r = radius * EQUAL_AREA_SCALE;
  const h = halfLength;
  return lathe([
    { radius: 0, z: h, normalRadial: 0, normalAxial: 1 },
    { radius: r, z: h, normalRadial: 0, normalAxial: 1 },
    { radius: r, z: h, normalRadial: 1, normalAxial: 0 },
    { radius: r, z: -h, normalRadial: 1, normalAxial: 0 },
    { radius: r, z: -h, normalRadial: 0, normalAxial: -1 },
    { radius: 0, z: -h, normalRadial: 0, normalAxial: -1 },
  ]).build();
}

function ellipsoidMesh(a: number, b: number, c: number): TriangleMesh {
  const mesh = lathe(sphereProfile(1)).build();
  const { positions: p, normals: n } = mesh;
  const radii = [a, b, c];
  for (let i = 0; i < p.length; i += 3) {
    for (let k = 0; k < 3; k++) {
      p[i + k] *= radii[k];
      n[i + k] /= radii[k]; // normals transform by the inverse transpose of the scaling
    }
    const len = Math.hypot(n[i], n[i + 1], n[i + 2]);
    for (let k = 0; k < 3; k++) n[i + k] /= len;
  }
  mesh.boundingRadius = Math.max(a, b, c) * EQUAL_AREA_SCALE;
  return mesh;
}

function planeMesh(hx: number, hy: number): TriangleMesh {
  const x = hx > 0 ? hx : INFINITE_PLANE_HALF_SIZE;
  const y = hy > 0 ? hy : INFINITE_PLANE_HALF_SIZE;
  const b = new MeshBuilder();
  const up = [0, 0, 1];
  const q = [b.vertex([-x, -y, 0], up), b.vertex([x, -y, 0], up), b.vertex([x, y, 0], up), b.vertex([-x, y, 0], up)];
  b.triangle(q[0], q[1], q[2]);
  b.triangle(q[0], q[2], q[3]);
  return b.build();
}

function buildMesh(type: PrimitiveType, size: number[]): TriangleMesh {
  switch (type) {
    case 'plane':
      return planeMesh(size[0], size[1]);
    case 'sphere':
      return lathe(sphereProfile(size[0])).build();
    case 'capsule':
      return lathe(sphereProfile(size[0], size[1])).build();
    case 'ellipsoid':
      return ellipsoidMesh(size[0], size[1], size[2]);
    case 'cylinder':
      return cylinderMesh(size[0], size[1]);
    case 'box':
      return boxMesh(size[0], size[1], size[2]);
  }
}

const meshCache = new Map<string, TriangleMesh>();

/** The (shared, read-only) mesh of a primitive; MuJoCo size semantics (see RenderGeom in render.ts). */
export function geomMesh(type: PrimitiveType, size: number[]): TriangleMesh {
  const key = `${type}:${size[0]},${size[1]},${size[2]}`;
  let mesh = meshCache.get(key);
  if (!mesh) {
    if (meshCache.size >= MAX_CACHED_MESHES) meshCache.clear();
    mesh = buildMesh(type, size);
    meshCache.set(key, mesh);
  }
  return mesh;
}

/**
 * Flat-shaded mesh from vertices (n, 3) and counter-clockwise faces (t, 3), e.g. a MuJoCo mesh's mesh_vert and
 * mesh_face (already in the geom frame). Each face gets its own three vertices so that edges stay sharp.
 */
export function meshFromFaces(vertices: ArrayLike<number>, faces: ArrayLike<number>): TriangleMesh {
  const b = new MeshBuilder();
  for (let f = 0; f < faces.length; f += 3) {
    const [p0, p1, p2] = [0, 1, 2].map((k) => [0, 1, 2].map((c) => vertices[3 * faces[f + k] + c]));
    const e1 = [p1[0] - p0[0], p1[1] - p0[1], p1[2] - p0[2]];
    const e2 = [p2[0] - p0[0], p2[1] - p0[1], p2[2] - p0[2]];
    const n = [e1[1] * e2[2] - e1[2] * e2[1], e1[2] * e2[0] - e1[0] * e2[2], e1[0] * e2[1] - e1[1] * e2[0]];
    const length = Math.hypot(n[0], n[1], n[2]);
    if (length === 0) continue; // degenerate face
    const normal = n.map((c) => c / length);
    b.triangle(b.vertex(p0, normal), b.vertex(p1, normal), b.vertex(p2, normal));
  }
  return b.build();
}
