// The task suite: LIBERO-like tasks in four suites, their seeded initial layouts and success predicates.
//
//   spatial  the same two red cubes, plate and basket; the cube is named by where it is ("on the left")
//   object   four objects and a basket; the object is named by what it is, the others are distractors
//   goal     one scene (two cubes, plate, green zone), different goals: place, stack, push
//   long     two sub-goals in one instruction
//
// Left/right are as seen in the agent-view image: image left is world -y (see scene.ts). A layout depends only on
// (suite, seed), so all tasks of a suite share the scene of a seed and only the instruction tells them apart.
// Success predicates read simulator state through SceneState (implemented by env.ts).
import { UserError } from '../errors.js';
import { createRng, type Rng } from './prng.js';
import {
  SIZES,
  restingHeight,
  supportHeight,
  type ColorName,
  type FixtureKind,
  type FixtureSpec,
  type ObjectShape,
  type ObjectSpec,
  type SceneSpec,
} from './scene.js';
import type { SuiteName, TaskInfo } from './types.js';

/**
 * A sub-goal. `on`: `object` rests on/in `target` (a plate, a basket, or another object: stacking) and the gripper
 * does not touch it. `push`: `object` rests on the table inside the zone `target` (the gripper may touch it).
 */
export type Goal = { kind: 'on'; object: string; target: string } | { kind: 'push'; object: string; target: string };

export interface TaskDefinition extends TaskInfo {
  goals: Goal[];
}

/** One episode's initial state. */
export interface Layout {
  scene: SceneSpec;
  /** initial TCP position [x, y, z] and yaw */
  eeStart: [number, number, number];
  eeYaw: number;
}

export const SUITES: readonly SuiteName[] = ['spatial', 'object', 'goal', 'long'];

/** Step limits as LIBERO's (20 Hz control). */
const MAX_STEPS: Record<SuiteName, number> = { spatial: 220, object: 280, goal: 300, long: 520 };

const task = (id: string, suite: SuiteName, instruction: string, goals: Goal[]): TaskDefinition => ({
  id,
  suite,
  instruction,
  maxSteps: MAX_STEPS[suite],
  goals,
});
const on = (object: string, target: string): Goal => ({ kind: 'on', object, target });

const TASKS: readonly TaskDefinition[] = [
  task('spatial-left-cube-to-plate', 'spatial', 'pick up the red cube on the left and place it on the plate', [
    on('red_cube_left', 'plate'),
  ]),
  task('spatial-right-cube-to-plate', 'spatial', 'pick up the red cube on the right and place it on the plate', [
    on('red_cube_right', 'plate'),
  ]),
  task('spatial-right-cube-to-basket', 'spatial', 'pick up the red cube on the right and put it in the basket', [
    on('red_cube_right', 'basket'),
  ]),
  task('object-blue-cube-to-basket', 'object', 'pick up the blue cube and place it in the basket', [
    on('blue_cube', 'basket'),
  ]),
  task('object-green-cylinder-to-basket', 'object', 'pick up the green cylinder and place it in the basket', [
    on('green_cylinder', 'basket'),
  ]),
  task('object-yellow-cylinder-to-basket', 'object', 'pick up the yellow cylinder and place it in the basket', [
    on('yellow_cylinder', 'basket'),
  ]),
  task('goal-red-cube-on-plate', 'goal', 'put the red cube on the plate', [on('red_cube', 'plate')]),
  task('goal-stack-blue-on-red', 'goal', 'stack the blue cube on top of the red cube', [on('blue_cube', 'red_cube')]),
  task('goal-push-red-cube-to-zone', 'goal', 'push the red cube into the green area', [
    { kind: 'push', object: 'red_cube', target: 'zone' },
  ]),
  task('long-both-cubes-to-basket', 'long', 'put both the red cube and the blue cube in the basket', [
    on('red_cube', 'basket'),
    on('blue_cube', 'basket'),
  ]),
  task(
    'long-cube-to-plate-and-cylinder-to-basket',
    'long',
    'put the red cube on the plate and put the yellow cylinder in the basket',
    [on('red_cube', 'plate'), on('yellow_cylinder', 'basket')],
  ),
];

/** Public task descriptions (id, suite, instruction, maxSteps) in suite order. */
export function listTasks(): TaskInfo[] {
  return TASKS.map(({ id, suite, instruction, maxSteps }) => ({ id, suite, instruction, maxSteps }));
}

/** The task with this id (goals included); throws a UserError naming the known ids otherwise. */
export function getTask(id: string): TaskDefinition {
  const found = TASKS.find((t) => t.id === id);
  if (!found) throw new UserError(`Unknown task '${id}'. Known tasks: ${TASKS.map((t) => t.id).join(', ')}.`);
  return found;
}

// ---------------------------------------------------------------------------------------------------------------
// Layouts

/** Where item centres may be (before shrinking by each item's footprint radius). */
const REGION = { x: [-0.2, 0.2], y: [-0.28, 0.28] } as const;
/** Free space between footprints, so open fingers (5.5 cm from the TCP) fit beside an object. */
const GAP = 0.04;

type Item =
  | { type: 'object'; name: string; shape: ObjectShape; color: ColorName }
  | { type: 'fixture'; name: string; kind: FixtureKind; color: ColorName };

function footprintRadius(item: Item): number {
  if (item.type === 'object') return item.shape === 'cube' ? SIZES.cubeHalf * Math.SQRT2 : SIZES.cylinderRadius;
  if (item.kind === 'plate') return SIZES.plateRadius;
  if (item.kind === 'zone') return SIZES.zoneRadius;
  return (SIZES.basketInnerHalf + 2 * SIZES.basketWallHalfThickness) * Math.SQRT2;
}

const obj = (name: string, shape: ObjectShape, color: ColorName): Item => ({ type: 'object', name, shape, color });
const fix = (name: string, kind: FixtureKind, color: ColorName): Item => ({ type: 'fixture', name, kind, color });

/** Items of each suite's scene, largest first (placed in this order). */
const SUITE_ITEMS: Record<SuiteName, Item[]> = {
  spatial: [
    fix('basket', 'basket', 'brown'),
    fix('plate', 'plate', 'white'),
    obj('red_cube_a', 'cube', 'red'),
    obj('red_cube_b', 'cube', 'red'),
  ],
  object: [
    fix('basket', 'basket', 'brown'),
    obj('blue_cube', 'cube', 'blue'),
    obj('red_cube', 'cube', 'red'),
    obj('green_cylinder', 'cylinder', 'green'),
    obj('yellow_cylinder', 'cylinder', 'yellow'),
  ],
  goal: [
    fix('plate', 'plate', 'white'),
    obj('red_cube', 'cube', 'red'),
    fix('zone', 'zone', 'green'),
    obj('blue_cube', 'cube', 'blue'),
  ],
  long: [
    fix('basket', 'basket', 'brown'),
    fix('plate', 'plate', 'white'),
    obj('red_cube', 'cube', 'red'),
    obj('blue_cube', 'cube', 'blue'),
    obj('yellow_cylinder', 'cylinder', 'yellow'),
  ],
};

interface Placed {
  item: Item;
  x: number;
  y: number;
  r: number;
}

function distanceToSegment(px: number, py: number, ax: number, ay: number, bx: number, by: number): number {
  const dx = bx - ax;
  const dy = by - ay;
  const t = Math.max(0, Math.min(1, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)));
  return Math.hypot(px - (ax + t * dx), py - (ay + t * dy));
}

/** Suite-specific constraints on a finished placement (beyond non-overlap). */
function layoutAcceptable(suite: SuiteName, placed: Placed[]): boolean {
  const at = (name: string) => placed.find((p) => p.item.name === name)!;
  if (suite === 'spatial') {
    // the two cubes are clearly left and right of each other in the image
    return Math.abs(at('red_cube_a').y - at('red_cube_b').y) >= 0.12;
  }
  if (suite === 'goal') {
    // the push line (from a pusher start 6 cm behind the cube to the zone) is free of other items
    const cube = at('red_cube');
    const zone = at('zone');
    const d = Math.hypot(zone.x - cube.x, zone.y - cube.y);
    if (d < 0.1 || d > 0.16) return false;
    const ux = (zone.x - cube.x) / d;
    const uy = (zone.y - cube.y) / d;
    const sx = cube.x - 0.06 * ux;
    const sy = cube.y - 0.06 * uy;
    if (Math.abs(sx) > REGION.x[1] || Math.abs(sy) > REGION.y[1]) return false;
    return placed.every(
      (p) => p === cube || p === zone || distanceToSegment(p.x, p.y, sx, sy, zone.x, zone.y) > p.r + 0.045,
    );
  }
  return true;
}

function samplePlacement(items: Item[], rng: Rng, suite: SuiteName): Placed[] {
  for (let attempt = 0; attempt < 1000; attempt++) {
    const placed: Placed[] = [];
    for (const item of items) {
      const r = footprintRadius(item);
      let done = false;
      for (let tries = 0; tries < 200 && !done; tries++) {
        let x = rng.uniform(REGION.x[0] + r, REGION.x[1] - r);
        let y = rng.uniform(REGION.y[0] + r, REGION.y[1] - r);
        if (suite === 'goal' && item.name === 'zone') {
          // the zone goes 10-16 cm from the red cube, so the push is short
          const cube = placed.find((p) => p.item.name === 'red_cube')!;
          const angle = rng.uniform(-Math.PI, Math.PI);
          const d = rng.uniform(0.1, 0.16);
          x = cube.x + d * Math.cos(angle);
          y = cube.y + d * Math.sin(angle);
          if (Math.abs(x) > REGION.x[1] - r || Math.abs(y) > REGION.y[1] - r) continue;
        }
        const free = placed.every((p) => {
          // the zone is flat: the pushed cube is its only neighbour allowed closer
          const gap = item.name === 'zone' && p.item.name === 'red_cube' ? 0 : GAP;
          return Math.hypot(p.x - x, p.y - y) >= p.r + r + gap;
        });
        if (free) {
          placed.push({ item, x, y, r });
          done = true;
        }
      }
      if (!done) break;
    }
    if (placed.length === items.length && layoutAcceptable(suite, placed)) return placed;
  }
  throw new Error(`Could not sample a layout for suite '${suite}' (internal: region too small).`);
}

/** The initial state of `task` for `seed`: deterministic, shared by all tasks of the suite. */
export function sampleLayout(task: TaskInfo, seed: number): Layout {
  const rng = createRng(seed, `layout:${task.suite}`);
  const placed = samplePlacement(SUITE_ITEMS[task.suite], rng, task.suite);
  const objects: ObjectSpec[] = [];
  const fixtures: FixtureSpec[] = [];
  for (const p of placed) {
    const item = p.item;
    if (item.type === 'object') {
      const yaw = item.shape === 'cube' ? rng.uniform(-Math.PI / 4, Math.PI / 4) : 0;
      objects.push({ name: item.name, shape: item.shape, color: item.color, position: [p.x, p.y], yaw });
    } else {
      const yaw = item.kind === 'basket' ? rng.uniform(-0.3, 0.3) : 0;
      fixtures.push({ name: item.name, kind: item.kind, color: item.color, position: [p.x, p.y], yaw });
    }
  }
  if (task.suite === 'spatial') {
    // name the two identical cubes by their place in the image: left = smaller y
    const [a, b] = objects;
    const left = a.position[1] < b.position[1] ? a : b;
    left.name = 'red_cube_left';
    (left === a ? b : a).name = 'red_cube_right';
  }
  const eeStart: [number, number, number] = [rng.uniform(-0.12, -0.06), rng.uniform(-0.04, 0.04), rng.uniform(0.2, 0.24)];
  return { scene: { objects, fixtures }, eeStart, eeYaw: rng.uniform(-0.2, 0.2) };
}

// ---------------------------------------------------------------------------------------------------------------
// Success predicates

/** Simulator state the predicates need (env.ts implements it). */
export interface SceneState {
  /** centre position [x, y, z] of a free object */
  objectPosition(name: string): number[];
  /** linear speed of a free object (m/s) */
  objectSpeed(name: string): number;
  /** whether any gripper geom (pads, palm) touches the object */
  touchingGripper(name: string): boolean;
}

/** Tolerances of the predicates (metres, m/s). */
export const SUCCESS_TOLERANCE = {
  /** an object resting on a support: centre height within [-below, +above] of its ideal resting height */
  restBelow: 0.012,
  restAbove: 0.015,
  /** at rest: slower than this */
  speed: 0.05,
  /** on a plate: centre within plateRadius - plateMargin of its centre */
  plateMargin: 0.015,
  /** stacked: centres within this horizontal distance */
  stackOffset: 0.025,
  /** in a zone: centre within zoneRadius - zoneMargin of the zone centre */
  zoneMargin: 0.01,
} as const;

export function objectShape(scene: SceneSpec, name: string): ObjectShape {
  const o = scene.objects.find((x) => x.name === name);
  if (!o) throw new Error(`internal: no object '${name}' in the scene`);
  return o.shape;
}

/** Whether one sub-goal holds in the current state. */
export function goalSatisfied(goal: Goal, scene: SceneSpec, state: SceneState): boolean {
  const shape = objectShape(scene, goal.object);
  const p = state.objectPosition(goal.object);
  const tol = SUCCESS_TOLERANCE;
  const fixture = scene.fixtures.find((x) => x.name === goal.target);
  let placed: boolean;
  if (fixture) {
    const dx = p[0] - fixture.position[0];
    const dy = p[1] - fixture.position[1];
    const rest = supportHeight(fixture.kind) + restingHeight(shape);
    if (fixture.kind === 'plate') {
      placed =
        Math.hypot(dx, dy) < SIZES.plateRadius - tol.plateMargin &&
        p[2] > rest - tol.restBelow &&
        p[2] < rest + tol.restAbove;
    } else if (fixture.kind === 'basket') {
      // inside the walls (basket frame) and below their top: resting, tilted or on another object in it
      const c = Math.cos(fixture.yaw);
      const s = Math.sin(fixture.yaw);
      const lx = c * dx + s * dy;
      const ly = -s * dx + c * dy;
      const inner = SIZES.basketInnerHalf;
      placed =
        Math.abs(lx) < inner && Math.abs(ly) < inner && p[2] < SIZES.basketWallHeight + 0.04 && p[2] > supportHeight('basket');
    } else {
      const rest0 = restingHeight(shape);
      placed =
        Math.hypot(dx, dy) < SIZES.zoneRadius - tol.zoneMargin && p[2] > rest0 - tol.restBelow && p[2] < rest0 + tol.restAbove;
    }
  } else {
    // stacking on another object, itself resting on the table
    const q = state.objectPosition(goal.target);
    const targetShape = objectShape(scene, goal.target);
    const targetTop = q[2] + restingHeight(targetShape);
    const rest = targetTop + restingHeight(shape);
    placed =
      Math.hypot(p[0] - q[0], p[1] - q[1]) < tol.stackOffset &&
      p[2] > rest - tol.restBelow &&
      p[2] < rest + tol.restAbove &&
      Math.abs(q[2] - restingHeight(targetShape)) < tol.restBelow;
  }
  if (!placed || state.objectSpeed(goal.object) > tol.speed) return false;
  return goal.kind === 'push' || !state.touchingGripper(goal.object);
}

/** The task's success: every sub-goal holds at once. */
export function taskSucceeded(task: TaskDefinition, scene: SceneSpec, state: SceneState): boolean {
  return task.goals.every((goal) => goalSatisfied(goal, scene, state));
}
