// Cameras and the software renderer against projection math, on scenes compiled by MuJoCo (mujoco-js).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { cameraFromMujoco, lookAtCamera, projectPoints } from '../../src/sim/camera.js';
import { cameraId, loadModelFromXml, loadMujoco, type MainModule } from '../../src/sim/mujoco.js';
import { geomsFromMujoco, renderFrame, renderRgb, type RenderGeom } from '../../src/sim/render.js';
import { geomMesh, type PrimitiveType } from '../../src/sim/tessellate.js';
import type { CameraParams, RgbImage } from '../../src/sim/types.js';

import { BOUNDS_MAX_PX, CENTROID_MAX_PX, DEPTH_MAX_M, DISC_AREA_MAX_RELATIVE, EXACT } from '../tolerances.js';

const SIZE = 224;
const IDENTITY = [1, 0, 0, 0, 1, 0, 0, 0, 1];

// A plane, a red box and a blue sphere seen from above and in front; camera 'front' looks along -x.
const SCENE_XML = `
<mujoco model="render-test">
  <worldbody>
    <geom name="floor" type="plane" size="0 0 1" rgba="0.8 0.8 0.8 1"/>
    <geom name="box" type="box" pos="0 -0.12 0.05" size="0.04 0.05 0.05" euler="0 0 25" rgba="1 0 0 1"/>
    <geom name="ball" type="sphere" pos="-0.05 0.12 0.06" size="0.06" rgba="0 0 1 1"/>
    <camera name="front" pos="0.7 0 0.5" xyaxes="0 1 0 -0.6 0 0.8" fovy="45"/>
    <camera name="tilted" pos="0.5 -0.3 0.8" xyaxes="0.6 0.8 0 -0.4 0.3 0.866" fovy="60"/>
  </worldbody>
</mujoco>`;

type Rgb = [number, number, number];
type ColourTest = (rgb: Rgb) => boolean;
const isRed: ColourTest = ([r, g, b]) => r > 40 && g < 0.3 * r && b < 0.3 * r;
const isBlue: ColourTest = ([r, g, b]) => b > 40 && r < 0.3 * b && g < 0.3 * b;

interface PixelSet {
  count: number;
  centroid: [number, number];
  /** pixel-centre bounds: min/max of (i + 0.5) and (j + 0.5) */
  minU: number;
  maxU: number;
  minV: number;
  maxV: number;
}

function pixelsWhere(width: number, height: number, keep: (p: number) => boolean): PixelSet {
  const set: PixelSet = { count: 0, centroid: [0, 0], minU: Infinity, maxU: -Infinity, minV: Infinity, maxV: -Infinity };
  for (let j = 0; j < height; j++) {
    for (let i = 0; i < width; i++) {
      if (!keep(j * width + i)) continue;
      const u = i + 0.5;
      const v = j + 0.5;
      set.count++;
      set.centroid[0] += u;
      set.centroid[1] += v;
      set.minU = Math.min(set.minU, u);
      set.maxU = Math.max(set.maxU, u);
      set.minV = Math.min(set.minV, v);
      set.maxV = Math.max(set.maxV, v);
    }
  }
  set.centroid[0] /= set.count;
  set.centroid[1] /= set.count;
  return set;
}

function colourPixels(image: RgbImage, colour: ColourTest): PixelSet {
  const d = image.data;
  return pixelsWhere(image.width, image.height, (p) => colour([d[3 * p], d[3 * p + 1], d[3 * p + 2]]));
}

/** Bounds of the projections of many points (pixel units). */
function projectedBounds(camera: CameraParams, points: number[][]) {
  const projected = projectPoints(camera, points);
  assert.ok(projected.every((p) => p.visible));
  const us = projected.map((p) => p.u);
  const vs = projected.map((p) => p.v);
  return { minU: Math.min(...us), maxU: Math.max(...us), minV: Math.min(...vs), maxV: Math.max(...vs) };
}

function boxCorners(geom: RenderGeom): number[][] {
  const corners: number[][] = [];
  for (const sx of [-1, 1]) for (const sy of [-1, 1]) for (const sz of [-1, 1]) {
    const local = [sx * geom.size[0], sy * geom.size[1], sz * geom.size[2]];
    corners.push([0, 1, 2].map((r) => geom.pos[r] + [0, 1, 2].reduce((s, c) => s + geom.mat[3 * r + c] * local[c], 0)));
  }
  return corners;
}

/** Points on a sphere's surface (latitude-longitude grid, dense enough for sub-pixel bounds). */
function spherePoints(centre: number[], radius: number): number[][] {
  const points: number[][] = [];
  const steps = 90;
  for (let a = 0; a <= steps; a++) {
    const polar = (Math.PI * a) / steps;
    for (let b = 0; b < 2 * steps; b++) {
      const azimuth = (Math.PI * b) / steps;
      points.push([
        centre[0] + radius * Math.sin(polar) * Math.cos(azimuth),
        centre[1] + radius * Math.sin(polar) * Math.sin(azimuth),
        centre[2] + radius * Math.cos(polar),
      ]);
    }
  }
  return points;
}

function assertBoundsClose(actual: PixelSet, expected: ReturnType<typeof projectedBounds>): void {
  for (const key of ['minU', 'maxU', 'minV', 'maxV'] as const) {
    assert.ok(Math.abs(actual[key] - expected[key]) <= BOUNDS_MAX_PX, `${key}: pixels ${actual[key]}, projected ${expected[key]}`);
  }
}

function sphere(pos: number[], radius: number, rgba: number[]): RenderGeom {
  return { type: 'sphere', size: [radius, 0, 0], pos, mat: IDENTITY, rgba };
}

describe('cameras and renderer on a MuJoCo scene', () => {
  let mujoco: MainModule;
  let model: ReturnType<typeof loadModelFromXml>;
  let data: InstanceType<MainModule['MjData']>;

  before(async () => {
    mujoco = await loadMujoco();
    model = loadModelFromXml(mujoco, SCENE_XML);
    data = new mujoco.MjData(model);
    mujoco.mj_forward(model, data);
  });
  after(() => {
    data?.delete();
    model?.delete();
  });

  test('cameraFromMujoco: a point on the optical axis lands at the image centre; axes follow OpenCV', () => {
    const id = cameraId(mujoco, model, 'tilted');
    const camera = cameraFromMujoco(model, data, id, SIZE, SIZE, 'tilted');
    const position = [0.5, -0.3, 0.8];
    const x = [0.6, 0.8, 0]; // MuJoCo camera x (image right)
    const yRaw = [-0.4, 0.3, 0.866]; // MuJoCo camera y (image up); MuJoCo orthonormalizes it against x
    const dot = yRaw.reduce((s, c, k) => s + c * x[k], 0);
    const yOrtho = yRaw.map((c, k) => c - dot * x[k]);
    const yNorm = Math.hypot(...yOrtho);
    const y = yOrtho.map((c) => c / yNorm);
    const forward = [x[2] * y[1] - x[1] * y[2], x[0] * y[2] - x[2] * y[0], x[1] * y[0] - x[0] * y[1]]; // -(x cross y)
    const onAxis = position.map((c, k) => c + 1.7 * forward[k]);
    const [centre, right, up] = projectPoints(camera, [
      onAxis,
      onAxis.map((c, k) => c + 0.1 * x[k]),
      onAxis.map((c, k) => c + 0.1 * y[k]),
    ]);
    assert.ok(Math.abs(centre.u - SIZE / 2) < EXACT && Math.abs(centre.v - SIZE / 2) < EXACT, JSON.stringify(centre));
    assert.ok(Math.abs(centre.depth - 1.7) < EXACT);
    const fy = SIZE / 2 / Math.tan(Math.PI / 6); // fovy 60 degrees
    assert.ok(Math.abs(right.u - (SIZE / 2 + (fy * 0.1) / 1.7)) < 1e-6 && Math.abs(right.v - SIZE / 2) < 1e-6);
    assert.ok(Math.abs(up.v - (SIZE / 2 - (fy * 0.1) / 1.7)) < 1e-6 && Math.abs(up.u - SIZE / 2) < 1e-6);
    assert.deepEqual(camera.intrinsics.map((c) => Math.round(c * 1e9) / 1e9), [fy, 0, 112, 0, fy, 112, 0, 0, 1].map((c) => Math.round(c * 1e9) / 1e9));
    // The same camera built from eye/target/up.
    const lookAt = lookAtCamera({ eye: position, target: onAxis, up: y, fovyDeg: 60, width: SIZE, height: SIZE });
    lookAt.worldToCamera.forEach((c, k) => assert.ok(Math.abs(c - camera.worldToCamera[k]) < 1e-9, `entry ${k}`));
  });

  test('projectPoints: behind the camera and outside the image are not visible', () => {
    const camera = lookAtCamera({ eye: [0, 0, 0], target: [1, 0, 0], fovyDeg: 45, width: SIZE, height: SIZE });
    const [behind, outside, inside] = projectPoints(camera, [[-1, 0, 0], [1, 5, 0], [1, 0, 0]]);
    assert.equal(behind.visible, false);
    assert.ok(behind.depth < 0);
    assert.equal(outside.visible, false);
    assert.equal(inside.visible, true);
    assert.equal(inside.u, SIZE / 2);
  });

  test('object pixels sit where projectPoints puts the objects', () => {
    const camera = cameraFromMujoco(model, data, cameraId(mujoco, model, 'front'), SIZE, SIZE);
    const geoms = geomsFromMujoco(model, data);
    assert.deepEqual(geoms.map((g) => g.type), ['plane', 'box', 'sphere']);
    assert.deepEqual(geoms.map((g) => g.geomId), ['floor', 'box', 'ball'].map((name) => mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM.value, name)));
    const frame = renderFrame(geoms, camera);
    const [box, ball] = [geoms[1], geoms[2]];
    const [boxCentre, ballCentre] = projectPoints(camera, [box.pos, ball.pos]);

    const red = colourPixels(frame.image, isRed);
    const blue = colourPixels(frame.image, isBlue);
    assert.ok(red.count > 200 && blue.count > 200, `red ${red.count}, blue ${blue.count}`);
    assert.ok(Math.hypot(red.centroid[0] - boxCentre.u, red.centroid[1] - boxCentre.v) < CENTROID_MAX_PX);
    assert.ok(Math.hypot(blue.centroid[0] - ballCentre.u, blue.centroid[1] - ballCentre.v) < CENTROID_MAX_PX);
    assertBoundsClose(red, projectedBounds(camera, boxCorners(box)));
    assertBoundsClose(blue, projectedBounds(camera, spherePoints(ball.pos, ball.size[0])));

    // The colour masks are exactly the segmentation of those geoms.
    assert.equal(pixelsWhere(SIZE, SIZE, (p) => frame.geomIndex[p] === 1).count, red.count);
    assert.equal(pixelsWhere(SIZE, SIZE, (p) => frame.geomIndex[p] === 2).count, blue.count);
  });

  test('a sphere straight ahead covers a disc of radius fy r / sqrt(d^2 - r^2)', () => {
    const fovyDeg = 45;
    const camera = lookAtCamera({ eye: [0, 0, 0], target: [1, 0, 0], fovyDeg, width: SIZE, height: SIZE });
    const fy = camera.intrinsics[4];
    for (const [radius, distance] of [[0.1, 1], [0.2, 0.7], [0.05, 1.5]]) {
      const frame = renderFrame([sphere([distance, 0, 0], radius, [0, 0, 1, 1])], camera);
      const disc = pixelsWhere(SIZE, SIZE, (p) => frame.geomIndex[p] === 0);
      const discRadius = (fy * radius) / Math.sqrt(distance ** 2 - radius ** 2);
      const expected = Math.PI * discRadius ** 2;
      const relative = Math.abs(disc.count - expected) / expected;
      assert.ok(relative < DISC_AREA_MAX_RELATIVE, `r ${radius} d ${distance}: ${disc.count} px vs ${expected.toFixed(1)}`);
      assert.ok(Math.abs(disc.centroid[0] - SIZE / 2) < 0.1 && Math.abs(disc.centroid[1] - SIZE / 2) < 0.1);
    }
  });

  test('a nearer object occludes a farther one, whatever the draw order; depth is the front surface', () => {
    const camera = lookAtCamera({ eye: [0, 0, 0], target: [1, 0, 0], fovyDeg: 45, width: SIZE, height: SIZE });
    const near = sphere([1, 0, 0], 0.1, [0, 1, 0, 1]);
    const far = sphere([2, 0.05, 0], 0.4, [1, 0, 0, 1]);
    const forward = renderFrame([near, far], camera);
    const backward = renderFrame([far, near], camera);
    const centre = (SIZE / 2) * SIZE + SIZE / 2;
    assert.equal(forward.geomIndex[centre], 0);
    assert.equal(backward.geomIndex[centre], 1);
    assert.ok(Math.abs(forward.depth[centre] - 0.9) < DEPTH_MAX_M, `depth ${forward.depth[centre]}`);
    assert.ok(Buffer.from(forward.image.data).equals(Buffer.from(backward.image.data)));
    // The far sphere shows around the near one, and the near one is whole.
    const nearDisc = pixelsWhere(SIZE, SIZE, (p) => forward.geomIndex[p] === 0).count;
    const nearAlone = renderFrame([near], camera);
    const alone = pixelsWhere(SIZE, SIZE, (p) => nearAlone.geomIndex[p] === 0).count;
    assert.equal(nearDisc, alone);
    assert.ok(pixelsWhere(SIZE, SIZE, (p) => forward.geomIndex[p] === 1).count > 1000);
  });

  test('an infinite floor is clipped at the near plane and ends at the horizon', () => {
    const camera = lookAtCamera({ eye: [0, 0, 0.5], target: [1, 0, 0.5], fovyDeg: 45, width: SIZE, height: SIZE });
    const floor: RenderGeom = { type: 'plane', size: [0, 0, 1], pos: [0, 0, 0], mat: IDENTITY, rgba: [1, 1, 1, 1], checkerSize: 0.1 };
    const frame = renderFrame([floor], camera);
    const horizonMarginPx = 4; // the "infinite" plane ends 50 m away: 0.5 m below the eye is ~3 px under the horizon
    for (let j = 0; j < SIZE; j++) {
      const row = frame.geomIndex.subarray(j * SIZE, (j + 1) * SIZE);
      if (j < SIZE / 2) assert.ok(row.every((g) => g === -1), `row ${j} should be sky`);
      if (j >= SIZE / 2 + horizonMarginPx) assert.ok(row.every((g) => g === 0), `row ${j} should be floor`);
    }
    // Depth of a floor pixel: the ray through the pixel centre meets z = 0 at depth 0.5 fy / (v - cy).
    const j = 200;
    const expected = (0.5 * camera.intrinsics[4]) / (j + 0.5 - SIZE / 2);
    assert.ok(Math.abs(frame.depth[j * SIZE + 10] - expected) < 1e-4 * expected);
  });

  test('rendering is deterministic', () => {
    const camera = cameraFromMujoco(model, data, cameraId(mujoco, model, 'front'), SIZE, SIZE);
    const geoms = geomsFromMujoco(model, data);
    const first = renderRgb(geoms, camera);
    const second = renderRgb(geoms, camera);
    assert.ok(Buffer.from(first.data).equals(Buffer.from(second.data)));
  });

  test('a MuJoCo mesh cube renders like the box primitive of the same size', () => {
    const xml = `<mujoco>
      <asset><mesh name="cube" vertex="-1 -1 -1  1 -1 -1  -1 1 -1  1 1 -1  -1 -1 1  1 -1 1  -1 1 1  1 1 1" scale="0.05 0.05 0.05"/></asset>
      <worldbody>
        <geom type="mesh" mesh="cube" pos="0.1 0.05 0.05" euler="0 0 30" rgba="0 1 0 1"/>
        <geom type="box" size="0.05 0.05 0.05" pos="0.1 0.05 0.05" euler="0 0 30" rgba="0 1 0 1"/>
        <camera name="view" pos="0.7 0.2 0.5" xyaxes="-0.3 1 0 -0.6 -0.2 0.8" fovy="45"/>
      </worldbody>
    </mujoco>`;
    const m = loadModelFromXml(mujoco, xml);
    const d = new mujoco.MjData(m);
    try {
      mujoco.mj_forward(m, d);
      const [mesh, box] = geomsFromMujoco(m, d);
      assert.equal(mesh.type, 'mesh');
      const camera = cameraFromMujoco(m, d, cameraId(mujoco, m, 'view'), SIZE, SIZE);
      const meshFrame = renderFrame([mesh], camera);
      const boxFrame = renderFrame([box], camera);
      let differing = 0;
      let covered = 0;
      for (let p = 0; p < SIZE * SIZE; p++) {
        covered += boxFrame.geomIndex[p] === 0 ? 1 : 0;
        differing += meshFrame.geomIndex[p] !== boxFrame.geomIndex[p] ? 1 : 0;
        if (meshFrame.geomIndex[p] === 0 && boxFrame.geomIndex[p] === 0) {
          assert.ok(Math.abs(meshFrame.depth[p] - boxFrame.depth[p]) < 1e-5, `depth at pixel ${p}`);
        }
      }
      assert.ok(covered > 1000 && differing <= 2, `${differing} of ${covered} pixels differ`);
    } finally {
      d.delete();
      m.delete();
    }
  });

  test('excluded groups and transparent geoms are not drawn', () => {
    const xml = `<mujoco><worldbody>
      <geom type="sphere" size="0.1" rgba="1 0 0 1" group="3"/>
      <geom type="sphere" size="0.1" rgba="1 0 0 0"/>
      <geom type="box" size="0.1 0.1 0.1" rgba="0 1 0 1"/>
      <geom type="sphere" size="0.1" rgba="1 0 0 1" group="2"/>
    </worldbody></mujoco>`;
    const m = loadModelFromXml(mujoco, xml);
    const d = new mujoco.MjData(m);
    try {
      mujoco.mj_forward(m, d);
      assert.deepEqual(geomsFromMujoco(m, d, { excludeGroups: [3] }).map((g) => g.type), ['box', 'sphere']);
      assert.deepEqual(geomsFromMujoco(m, d, { excludeGroups: [2, 3] }).map((g) => g.type), ['box']);
      assert.equal(geomsFromMujoco(m, d).length, 3);
    } finally {
      d.delete();
      m.delete();
    }
  });
});

describe('tessellation', () => {
  const shapes: [PrimitiveType, number[]][] = [
    ['box', [0.1, 0.2, 0.3]],
    ['sphere', [0.1, 0, 0]],
    ['capsule', [0.05, 0.2, 0]],
    ['cylinder', [0.05, 0.2, 0]],
    ['ellipsoid', [0.1, 0.05, 0.2]],
    ['plane', [1, 2, 0.1]],
  ];
  for (const [type, size] of shapes) {
    test(`${type}: triangles wind counter-clockwise seen from outside, bounding radius holds every vertex`, () => {
      const { positions: p, normals: n, indices, boundingRadius } = geomMesh(type, size);
      for (let k = 0; k < indices.length; k += 3) {
        const [a, b, c] = [indices[k], indices[k + 1], indices[k + 2]];
        const e1 = [0, 1, 2].map((i) => p[3 * b + i] - p[3 * a + i]);
        const e2 = [0, 1, 2].map((i) => p[3 * c + i] - p[3 * a + i]);
        const face = [e1[1] * e2[2] - e1[2] * e2[1], e1[2] * e2[0] - e1[0] * e2[2], e1[0] * e2[1] - e1[1] * e2[0]];
        assert.ok(Math.hypot(...face) > 0, `degenerate triangle ${k / 3}`);
        const vertexNormalSum = [0, 1, 2].map((i) => n[3 * a + i] + n[3 * b + i] + n[3 * c + i]);
        assert.ok(face.reduce((s, f, i) => s + f * vertexNormalSum[i], 0) > 0, `triangle ${k / 3} faces inwards`);
      }
      for (let i = 0; i < p.length; i += 3) assert.ok(Math.hypot(p[i], p[i + 1], p[i + 2]) <= boundingRadius + EXACT);
    });
  }
});

describe('supersampling', () => {
  const camera = lookAtCamera({ eye: [0, 0, 0], target: [1, 0, 0], fovyDeg: 45, width: 64, height: 48 });
  const scene = [sphere([1, 0, 0], 0.15, [1, 0, 0, 1])];

  test('keeps the image size and interior colours, blends the silhouette edge', () => {
    const background = [0, 0, 0];
    const plain = renderRgb(scene, camera, { background });
    const smooth = renderRgb(scene, camera, { background, supersample: 2 });
    assert.equal(smooth.width, 64);
    assert.equal(smooth.height, 48);
    assert.equal(smooth.data.length, plain.data.length);
    const centre = 3 * (24 * 64 + 32);
    assert.ok(Math.abs(smooth.data[centre] - plain.data[centre]) <= 8, 'interior shading is smooth: nearly equal');
    // Along the centre row, the red channel goes from black to the sphere's red through intermediate values.
    const redRow = (image: RgbImage) => Array.from({ length: 64 }, (_, i) => image.data[3 * (24 * 64 + i)]);
    const [hard, soft] = [redRow(plain), redRow(smooth)];
    const partial = soft.filter((r, i) => r > 0 && r < 0.8 * Math.max(hard[i - 1] ?? 0, hard[i], hard[i + 1] ?? 0));
    assert.ok(partial.length >= 2, `edge pixels with partial coverage: ${partial}`);
  });

  test('rejects a non-integer or too large factor', () => {
    assert.throws(() => renderRgb(scene, camera, { supersample: 1.5 }), /supersample/);
    assert.throws(() => renderRgb(scene, camera, { supersample: 9 }), /supersample/);
  });
});
