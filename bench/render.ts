// Software-renderer cost on a LIBERO-like tabletop of ~20 primitive geoms: median ms per 224x224 frame, beside the
// cost of one MuJoCo physics step of the same scene measured in the same run (render / mj_step ratio).
// Also writes docs/images/render-example.png.
// Run: npx tsx bench/render.ts [--frames 100]
import { mkdirSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { writePng } from '../src/io/image.js';
import { cameraFromMujoco, lookAtCamera } from '../src/sim/camera.js';
import { cameraId, loadModelFromXml, loadMujoco } from '../src/sim/mujoco.js';
import { geomsFromMujoco, geomTriangles, renderRgb } from '../src/sim/render.js';

const { values } = parseArgs({ options: { frames: { type: 'string', default: '100' } } });
const frames = Number(values.frames);
const SIZE = 224;
const WARMUP_FRAMES = 10;
const EXAMPLE_PATH = 'docs/images/render-example.png';

// Table top at z = 0; a capsule "arm" with a box gripper above it; free objects of every primitive type.
const SCENE_XML = `
<mujoco model="render-bench">
  <worldbody>
    <geom type="plane" size="0 0 1" pos="0 0 -0.75" rgba="0.5 0.5 0.52 1"/>
    <geom type="box" size="0.4 0.55 0.025" pos="0 0 -0.025" rgba="0.72 0.62 0.5 1"/>
    <geom type="box" size="0.025 0.025 0.36" pos="0.35 0.5 -0.41" rgba="0.4 0.3 0.25 1"/>
    <geom type="box" size="0.025 0.025 0.36" pos="0.35 -0.5 -0.41" rgba="0.4 0.3 0.25 1"/>
    <geom type="box" size="0.025 0.025 0.36" pos="-0.35 0.5 -0.41" rgba="0.4 0.3 0.25 1"/>
    <geom type="box" size="0.025 0.025 0.36" pos="-0.35 -0.5 -0.41" rgba="0.4 0.3 0.25 1"/>
    <geom type="capsule" fromto="-0.5 0 0.1 -0.35 0 0.45" size="0.04" rgba="0.85 0.85 0.88 1"/>
    <geom type="capsule" fromto="-0.35 0 0.45 -0.05 0 0.35" size="0.035" rgba="0.85 0.85 0.88 1"/>
    <geom type="cylinder" size="0.03 0.04" pos="-0.05 0 0.29" rgba="0.3 0.3 0.32 1"/>
    <geom type="box" size="0.025 0.05 0.015" pos="-0.05 0 0.235" rgba="0.2 0.2 0.22 1"/>
    <geom type="box" size="0.01 0.006 0.035" pos="-0.05 0.035 0.19" rgba="0.15 0.15 0.15 1"/>
    <geom type="box" size="0.01 0.006 0.035" pos="-0.05 -0.035 0.19" rgba="0.15 0.15 0.15 1"/>
    <body pos="0.05 -0.15 0.025"><freejoint/><geom type="box" size="0.025 0.025 0.025" euler="0 0 20" rgba="0.85 0.1 0.1 1"/></body>
    <body pos="-0.1 0.2 0.025"><freejoint/><geom type="box" size="0.025 0.025 0.025" euler="0 0 -35" rgba="0.95 0.8 0.1 1"/></body>
    <body pos="0.12 0.12 0.05"><freejoint/><geom type="cylinder" size="0.03 0.05" rgba="0.1 0.6 0.2 1"/></body>
    <body pos="-0.15 -0.2 0.04"><freejoint/><geom type="cylinder" size="0.025 0.04" rgba="0.9 0.45 0.1 1"/></body>
    <body pos="0.15 -0.02 0.035"><freejoint/><geom type="sphere" size="0.035" rgba="0.15 0.3 0.9 1"/></body>
    <body pos="-0.02 0.05 0.03"><freejoint/><geom type="ellipsoid" size="0.06 0.04 0.03" rgba="0.6 0.2 0.7 1"/></body>
    <geom type="cylinder" size="0.07 0.006" pos="0.2 0.25 0.006" rgba="0.95 0.95 0.95 1"/>
    <geom type="cylinder" size="0.06 0.0005" pos="0.2 -0.25 0.0005" rgba="0.2 0.7 0.9 0.9"/>
    <geom type="capsule" size="0.015 0.06" pos="0.05 0.3 0.015" euler="90 0 30" rgba="0.4 0.25 0.15 1"/>
    <camera name="agentview" pos="0.75 0 0.55" xyaxes="0 1 0 -0.55 0 0.83" fovy="45"/>
  </worldbody>
</mujoco>`;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

const mujoco = await loadMujoco();
const model = loadModelFromXml(mujoco, SCENE_XML);
const data = new mujoco.MjData(model);
mujoco.mj_forward(model, data);
const camera = cameraFromMujoco(model, data, cameraId(mujoco, model, 'agentview'), SIZE, SIZE, 'agentview');
const geoms = geomsFromMujoco(model, data);
const triangles = geoms.reduce((n, g) => n + geomTriangles(g).indices.length / 3, 0);

/** Median wall time of `work` over `frames` calls after a warm-up, ms. */
function timeMs(work: () => void): number {
  const times: number[] = [];
  for (let i = 0; i < WARMUP_FRAMES + frames; i++) {
    const start = performance.now();
    work();
    if (i >= WARMUP_FRAMES) times.push(performance.now() - start);
  }
  return median(times);
}

const frameMs = timeMs(() => renderRgb(geomsFromMujoco(model, data), camera));
const antialiasedMs = timeMs(() => renderRgb(geomsFromMujoco(model, data), camera, { supersample: 2 }));
const stepMs = timeMs(() => mujoco.mj_step(model, data));

console.log(`scene: ${geoms.length} geoms, ${triangles} triangles, ${SIZE}x${SIZE}, median of ${frames} frames`);
console.log(`render (geomsFromMujoco + renderRgb):   ${frameMs.toFixed(2)} ms/frame`);
console.log(`  with supersample 2 (4 samples/pixel): ${antialiasedMs.toFixed(2)} ms/frame (${(antialiasedMs / frameMs).toFixed(2)}x)`);
console.log(`mj_step of the same scene (6 free bodies on the table): ${stepMs.toFixed(3)} ms; one frame = ${(frameMs / stepMs).toFixed(0)} physics steps`);

mkdirSync('docs/images', { recursive: true });
const settled = geomsFromMujoco(model, data);
writePng(EXAMPLE_PATH, renderRgb(settled, camera));
writePng(EXAMPLE_PATH.replace('.png', '-antialiased.png'), renderRgb(settled, camera, { supersample: 2 }));
// A second view from the side, for checking depth cues by eye.
const side = lookAtCamera({ eye: [0.2, 0.8, 0.45], target: [0, 0, 0.05], fovyDeg: 45, width: SIZE, height: SIZE });
writePng(EXAMPLE_PATH.replace('.png', '-side.png'), renderRgb(settled, side));
console.log(`wrote ${EXAMPLE_PATH}`);
data.delete();
model.delete();
