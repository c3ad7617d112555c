// MJCF for the tabletop scene: table, free-floating parallel-jaw gripper, graspable objects and static fixtures.
//
// World frame: z up, table top at z = 0, table centre at the origin. The gripper comes from the -x side; the
// `agentview` camera stands on the +x side looking back at it (as LIBERO's), so image left is world -y and image
// right is world +y. Task instructions ("on the left") use this image-left/right convention.
//
// The gripper is one body (`hand`) whose origin is the tool centre point (TCP, between the finger pads) with six
// joints applied in order: slides x, y, z along the world axes, then hinges yaw (z), pitch (y), roll (x), so its
// orientation is Rz(yaw) Ry(pitch) Rx(roll) and the hinges turn the hand about the TCP. At zero angles the fingers
// point down (-z) and close along the hand's y axis. Every joint has a position actuator (position servo with
// damping, force-limited), and the hand is gravity-compensated, as an OSC-controlled arm holds its own weight.
// Two prismatic fingers carry high-friction pads; grasps hold by contact friction only (nothing is welded).
export type ColorName = 'red' | 'green' | 'blue' | 'yellow' | 'orange' | 'purple' | 'white' | 'brown';

export const COLORS: Record<ColorName, [number, number, number]> = {
  red: [0.85, 0.12, 0.1],
  green: [0.15, 0.7, 0.2],
  blue: [0.12, 0.3, 0.85],
  yellow: [0.95, 0.82, 0.1],
  orange: [0.95, 0.5, 0.1],
  purple: [0.55, 0.2, 0.7],
  white: [0.92, 0.92, 0.9],
  brown: [0.55, 0.38, 0.22],
};

/** Object and fixture sizes (metres). */
export const SIZES = {
  cubeHalf: 0.02,
  cylinderRadius: 0.02,
  cylinderHalfHeight: 0.035,
  plateRadius: 0.075,
  plateHalfHeight: 0.005,
  basketInnerHalf: 0.07,
  basketWallHalfThickness: 0.004,
  basketWallHeight: 0.05,
  basketFloorHalfThickness: 0.004,
  zoneRadius: 0.05,
  tableHalf: [0.45, 0.6, 0.03],
} as const;

/** Gripper geometry and limits. */
export const GRIPPER = {
  /** per-finger travel: pad inner face at y = +-q from the TCP; opening = 2q, at most 0.09 m */
  fingerTravel: 0.045,
  padHalf: [0.012, 0.005, 0.0295],
  /** pad centre height above the TCP; the pads span z = -0.014 .. +0.045 in the hand frame */
  padCentreZ: 0.0155,
  /** how far the fingertips reach below the TCP */
  tipBelowTcp: 0.014,
  palmHalf: [0.02, 0.065, 0.01],
  palmCentreZ: 0.055,
  /** joint ranges: x, y, z (m), yaw, pitch, roll (rad) */
  range: {
    x: [-0.45, 0.45],
    y: [-0.5, 0.5],
    z: [0.0, 0.6],
    yaw: [-3.1, 3.1],
    pitch: [-0.9, 0.9],
    roll: [-0.9, 0.9],
  },
} as const;

/** Names of the gripper's collision geoms (contact with these means "touched by the gripper"). */
export const GRIPPER_GEOMS = ['left_pad', 'right_pad', 'palm'] as const;
export const FINGER_PAD_GEOMS = ['left_pad', 'right_pad'] as const;

/** MuJoCo joint names of the hand in qpos order, then the fingers. */
export const HAND_JOINTS = ['hand_x', 'hand_y', 'hand_z', 'hand_yaw', 'hand_pitch', 'hand_roll'] as const;
export const FINGER_JOINTS = ['finger_left', 'finger_right'] as const;

export const PHYSICS = {
  /** physics step (s) */
  timestep: 0.005,
  /** physics steps per control step: 10 x 5 ms = 50 ms, a 20 Hz controller */
  substeps: 10,
} as const;

export type ObjectShape = 'cube' | 'cylinder';

/** A free (graspable) object. Its body and geom are both called `name`. */
export interface ObjectSpec {
  name: string;
  shape: ObjectShape;
  color: ColorName;
  /** initial centre [x, y] on the table (z follows from the shape) */
  position: [number, number];
  yaw: number;
}

export type FixtureKind = 'plate' | 'basket' | 'zone';

/** A static target: plate (flat cylinder), basket (floor + 4 walls) or zone (flat coloured disc, no collision). */
export interface FixtureSpec {
  name: string;
  kind: FixtureKind;
  color: ColorName;
  position: [number, number];
  yaw: number;
}

export interface SceneSpec {
  objects: ObjectSpec[];
  fixtures: FixtureSpec[];
}

/** Centre height of a resting object above the table top. */
export function restingHeight(shape: ObjectShape): number {
  return shape === 'cube' ? SIZES.cubeHalf : SIZES.cylinderHalfHeight;
}

/** Height of a fixture's top support surface (what an object placed on/in it rests on). */
export function supportHeight(kind: FixtureKind): number {
  if (kind === 'plate') return 2 * SIZES.plateHalfHeight;
  if (kind === 'basket') return 2 * SIZES.basketFloorHalfThickness;
  return 0;
}

const f = (x: number) => (Math.abs(x) < 1e-12 ? '0' : x.toFixed(5).replace(/\.?0+$/, ''));
const vec = (v: readonly number[]) => v.map(f).join(' ');
const rgba = (color: ColorName, alpha = 1) => `${vec(COLORS[color])} ${f(alpha)}`;

function cross(a: number[], b: number[]): number[] {
  return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
}
function normalize(v: number[]): number[] {
  const n = Math.hypot(v[0], v[1], v[2]);
  return [v[0] / n, v[1] / n, v[2] / n];
}

/** MJCF `xyaxes` for a camera at `eye` looking at `target` with world +z up (MuJoCo cameras look along -z). */
export function lookAtXyAxes(eye: number[], target: number[]): string {
  const forward = normalize([target[0] - eye[0], target[1] - eye[1], target[2] - eye[2]]);
  const right = normalize(cross(forward, [0, 0, 1]));
  const up = cross(right, forward);
  return vec([...right, ...up]);
}

/** The fixed agent-view camera (front-above, looking back at the gripper's side of the table). */
export const AGENTVIEW = { eye: [0.55, 0, 0.6], target: [-0.03, 0, 0], fovyDeg: 45 };
/** The wrist camera, in the hand frame: beside the palm, looking down at the fingertips. */
export const WRIST_CAMERA = { eye: [0.065, 0, 0.09], target: [0, 0, -0.03], fovyDeg: 75 };

function objectXml(o: ObjectSpec): string {
  const z = restingHeight(o.shape) + 0.0005;
  const size =
    o.shape === 'cube'
      ? `type="box" size="${vec([SIZES.cubeHalf, SIZES.cubeHalf, SIZES.cubeHalf])}"`
      : `type="cylinder" size="${vec([SIZES.cylinderRadius, SIZES.cylinderHalfHeight])}"`;
  return `
    <body name="${o.name}" pos="${vec([o.position[0], o.position[1], z])}" euler="0 0 ${f(o.yaw)}">
      <freejoint name="${o.name}_joint"/>
      <geom name="${o.name}" ${size} class="object" rgba="${rgba(o.color)}"/>
    </body>`;
}

function fixtureXml(x: FixtureSpec): string {
  const pos = vec([x.position[0], x.position[1], 0]);
  if (x.kind === 'plate') {
    const h = SIZES.plateHalfHeight;
    return `
    <body name="${x.name}" pos="${pos}" euler="0 0 ${f(x.yaw)}">
      <geom name="${x.name}" type="cylinder" size="${vec([SIZES.plateRadius, h])}" pos="0 0 ${f(h)}"
            class="fixture" rgba="${rgba(x.color)}"/>
    </body>`;
  }
  if (x.kind === 'zone') {
    return `
    <body name="${x.name}" pos="${pos}">
      <geom name="${x.name}" type="cylinder" size="${vec([SIZES.zoneRadius, 0.0005])}" pos="0 0 0.0005"
            contype="0" conaffinity="0" rgba="${rgba(x.color, 0.9)}"/>
    </body>`;
  }
  // basket: floor + 4 walls, walls around the floor
  const a = SIZES.basketInnerHalf;
  const t = SIZES.basketWallHalfThickness;
  const ft = SIZES.basketFloorHalfThickness;
  const wh = SIZES.basketWallHeight / 2;
  const c = rgba(x.color);
  const wall = (name: string, p: number[], s: number[]) =>
    `<geom name="${name}" type="box" pos="${vec(p)}" size="${vec(s)}" class="fixture" rgba="${c}"/>`;
  return `
    <body name="${x.name}" pos="${pos}" euler="0 0 ${f(x.yaw)}">
      ${wall(`${x.name}`, [0, 0, ft], [a + 2 * t, a + 2 * t, ft])}
      ${wall(`${x.name}_wall_px`, [a + t, 0, wh], [t, a + 2 * t, wh])}
      ${wall(`${x.name}_wall_nx`, [-(a + t), 0, wh], [t, a + 2 * t, wh])}
      ${wall(`${x.name}_wall_py`, [0, a + t, wh], [a, t, wh])}
      ${wall(`${x.name}_wall_ny`, [0, -(a + t), wh], [a, t, wh])}
    </body>`;
}

function gripperXml(): string {
  const r = GRIPPER.range;
  const p = GRIPPER.padHalf;
  const palm = GRIPPER.palmHalf;
  const wristEye = WRIST_CAMERA.eye;
  const finger = (side: 'left' | 'right', sign: number) => `
      <body name="${side}_finger" pos="0 0 0" gravcomp="1">
        <joint name="finger_${side}" type="slide" axis="0 ${sign} 0" range="0 ${f(GRIPPER.fingerTravel)}"
               damping="2" armature="0.01"/>
        <geom name="${side}_pad" type="box" size="${vec(p)}" pos="0 ${f(sign * p[1])} ${f(GRIPPER.padCentreZ)}"
              class="pad" mass="0.04"/>
      </body>`;
  return `
    <body name="hand" pos="0 0 0" gravcomp="1">
      <joint name="hand_x" type="slide" axis="1 0 0" range="${vec(r.x)}" damping="5" armature="0.5"/>
      <joint name="hand_y" type="slide" axis="0 1 0" range="${vec(r.y)}" damping="5" armature="0.5"/>
      <joint name="hand_z" type="slide" axis="0 0 1" range="${vec(r.z)}" damping="5" armature="0.5"/>
      <joint name="hand_yaw" type="hinge" axis="0 0 1" range="${vec(r.yaw)}" damping="0.2" armature="0.02"/>
      <joint name="hand_pitch" type="hinge" axis="0 1 0" range="${vec(r.pitch)}" damping="0.2" armature="0.02"/>
      <joint name="hand_roll" type="hinge" axis="1 0 0" range="${vec(r.roll)}" damping="0.2" armature="0.02"/>
      <site name="tcp" pos="0 0 0" size="0.004" rgba="1 0 1 0" group="3"/>
      <geom name="palm" type="box" size="${vec(palm)}" pos="0 0 ${f(GRIPPER.palmCentreZ)}" mass="0.4"
            rgba="0.25 0.25 0.28 1" friction="1 0.005 0.0001"/>
      <geom name="wrist" type="cylinder" size="0.03 0.04" pos="0 0 0.105" mass="0.2" contype="0" conaffinity="0"
            rgba="0.75 0.75 0.78 1"/>
      <camera name="wrist" pos="${vec(wristEye)}" xyaxes="${lookAtXyAxes(wristEye, WRIST_CAMERA.target)}"
              fovy="${f(WRIST_CAMERA.fovyDeg)}"/>
      ${finger('left', 1)}
      ${finger('right', -1)}
    </body>`;
}

function actuatorXml(): string {
  const r = GRIPPER.range;
  const lin = (j: string, range: readonly number[]) =>
    `<position name="${j}" joint="${j}" kp="2500" kv="120" ctrlrange="${vec(range)}" forcerange="-60 60"/>`;
  const ang = (j: string, range: readonly number[]) =>
    `<position name="${j}" joint="${j}" kp="40" kv="2.5" ctrlrange="${vec(range)}" forcerange="-8 8"/>`;
  const fin = (j: string) =>
    `<position name="${j}" joint="${j}" kp="600" kv="15" ctrlrange="0 ${f(GRIPPER.fingerTravel)}" forcerange="-12 12"/>`;
  return `
  <actuator>
    ${lin('hand_x', r.x)}
    ${lin('hand_y', r.y)}
    ${lin('hand_z', r.z)}
    ${ang('hand_yaw', r.yaw)}
    ${ang('hand_pitch', r.pitch)}
    ${ang('hand_roll', r.roll)}
    ${fin('finger_left')}
    ${fin('finger_right')}
  </actuator>`;
}

/** MJCF text of a scene. Bodies/geoms are named after their specs; cameras `agentview` and `wrist`. */
export function buildSceneXml(spec: SceneSpec): string {
  const t = SIZES.tableHalf;
  const eye = AGENTVIEW.eye;
  return `<mujoco model="sqap-tabletop">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="${f(PHYSICS.timestep)}" integrator="implicitfast" cone="elliptic" impratio="5"/>
  <size memory="4M"/>
  <default>
    <geom solref="0.01 1" solimp="0.95 0.99 0.001"/>
    <default class="object">
      <geom density="600" friction="1 0.005 0.0001" condim="4"/>
    </default>
    <default class="fixture">
      <geom friction="0.8 0.005 0.0001"/>
    </default>
    <default class="pad">
      <geom friction="1.5 0.01 0.0002" condim="4" rgba="0.15 0.15 0.15 1"/>
    </default>
  </default>
  <visual><global offwidth="224" offheight="224"/></visual>
  <worldbody>
    <light name="top" pos="0 0 1.5" dir="0 0 -1" diffuse="0.7 0.7 0.7" directional="true"/>
    <light name="front" pos="1 0 1" dir="-1 0 -1" diffuse="0.3 0.3 0.3" directional="true"/>
    <geom name="floor" type="plane" size="2 2 0.1" pos="0 0 -0.75" rgba="0.45 0.42 0.4 1" contype="0" conaffinity="0"/>
    <geom name="table" type="box" size="${vec(t)}" pos="0 0 ${f(-t[2])}" rgba="0.72 0.62 0.5 1"
          friction="0.8 0.005 0.0001"/>
    <camera name="agentview" pos="${vec(eye)}" xyaxes="${lookAtXyAxes(eye, AGENTVIEW.target)}"
            fovy="${f(AGENTVIEW.fovyDeg)}"/>
${spec.fixtures.map(fixtureXml).join('')}
${spec.objects.map(objectXml).join('')}
${gripperXml()}
  </worldbody>
  <contact>
    <exclude body1="hand" body2="left_finger"/>
    <exclude body1="hand" body2="right_finger"/>
    <exclude body1="left_finger" body2="right_finger"/>
  </contact>
${actuatorXml()}
</mujoco>
`;
}
