// Behaviour-cloning samples streamed from `sim record` directories (docs/demonstrations.md): the successful
// episodes' steps (and every labelled step of a DAgger recording), each an (agent-view frame, instruction, action)
// triple. Only the low-dim data is held in memory; a sample's frame is read from its episode's .rgb file on demand,
// so a recording of any size trains in a few MB.
import fs from 'node:fs';
import nodePath from 'node:path';
import { UserError } from '../errors.js';
import type { RgbImage } from '../io/image.js';
import type { ActionStats } from '../models/action-tokenizer.js';
import { openDemonstrations } from '../sim/record.js';
import type { PinholeCamera } from '../prune/robot.js';
import { widenActionStats } from './action-targets.js';
import type { AuxEpisode } from './aux-vision.js';

export interface StepRef {
  episode: number;
  step: number;
}

interface EpisodeData {
  index: number;
  taskId: string;
  seed: number;
  instruction: string;
  /** [T, 7] row-major */
  actions: Float64Array;
  framePath: string;
  frameBytes: number;
  offsets: number[];
  width: number;
  height: number;
  /** privileged state for the auxiliary vision targets (aux-vision.ts) */
  state: AuxEpisode;
  /** the calibrated agent-view camera of the frames (aux-heatmap.ts) */
  camera: PinholeCamera;
}

function openRecording(dir: string): ReturnType<typeof openDemonstrations> {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new UserError(`demonstrations folder not found: ${dir}`);
  return openDemonstrations(dir);
}

export class DemoDataset {
  private constructor(
    readonly dir: string,
    readonly datasetName: string,
    readonly stats: ActionStats,
    readonly normStats: Record<string, unknown>,
    readonly episodes: EpisodeData[],
    /** every training step, episode-major */
    readonly steps: StepRef[],
  ) {}

  /**
   * Opens a recording; `include(taskId, seed)` picks episodes (all successful ones by default). `extraDirs` are more
   * recordings whose episodes all join (`train --add-demos`, e.g. DAgger recordings), normalized with the first
   * recording's action statistics (a checkpoint has one set of norm_stats; a DAgger recording's own are of the
   * states a learner reached, not of the expert's commands). Of a DAgger recording (meta.dagger) the failed episodes
   * are used too: their steps are the learner's mistakes labelled with the expert's commands. Throws a one-line
   * UserError when a folder is missing, is not a recording, differs in frame size, or nothing is left to train on.
   */
  static open(
    dir: string,
    include: (taskId: string, seed: number) => boolean = () => true,
    minActionRange = 0,
    extraDirs: readonly string[] = [],
  ): DemoDataset {
    const demos = openRecording(dir);
    const statistics = demos.statistics?.[demos.meta.dataset_name];
    if (!statistics) throw new UserError(`${dir} has no dataset_statistics.json (no successful episode was recorded), so there is nothing to train on`);
    const episodes: EpisodeData[] = [];
    const steps: StepRef[] = [];
    const sources = [
      { source: dir, recording: demos, picks: include },
      ...extraDirs.map((extra) => ({ source: extra, recording: openRecording(extra), picks: () => true })),
    ];
    const { width: w0, height: h0 } = demos.meta.image;
    for (const { source, recording, picks } of sources) {
      const labelled = recording.meta.dagger !== undefined;
      if (recording.meta.image.width !== w0 || recording.meta.image.height !== h0) {
        throw new UserError(`${source} has ${recording.meta.image.width}x${recording.meta.image.height} frames, ${dir} has ${w0}x${h0}: a run trains on one frame size`);
      }
      let added = 0;
      for (const entry of recording.meta.episodes) {
        if ((!entry.success && !labelled) || !picks(entry.task_id, entry.seed)) continue;
        const ep = recording.episode(entry.index, { frames: false });
        if (labelled && !ep.expertActions) throw new UserError(`${source}: episode ${entry.index} of a DAgger recording has no expert_actions`);
        const file = JSON.parse(fs.readFileSync(nodePath.join(source, entry.file), 'utf8')) as {
          frames: { file: string; frame_bytes: number; offsets: number[]; shape: number[] };
        };
        const [, height, width] = file.frames.shape;
        const e = episodes.length;
        episodes.push({
          index: entry.index,
          taskId: entry.task_id,
          seed: entry.seed,
          instruction: ep.instruction,
          // DART-style: imitate the expert's command where the recording has it, not the noisy action it took
          actions: Float64Array.from((ep.expertActions ?? ep.actions).flat()),
          framePath: nodePath.join(source, file.frames.file),
          frameBytes: file.frames.frame_bytes,
          offsets: file.frames.offsets,
          width,
          height,
          state: {
            proprio: ep.proprio,
            ...(ep.objectPositions ? { objectPositions: ep.objectPositions, fixturePositions: ep.fixturePositions ?? {} } : {}),
          },
          camera: ep.camera,
        });
        for (let t = 0; t < ep.steps; t++) steps.push({ episode: e, step: t });
        added++;
      }
      if (source !== dir && added === 0) throw new UserError(`${source} has no episodes to train on (an expert recording contributes its successful ones)`);
    }
    if (steps.length === 0) throw new UserError(`${dir} has no successful episodes for the chosen tasks and seeds`);
    // the statistics the targets are normalized with are the ones the checkpoint's norm_stats carry (widenActionStats)
    const action = widenActionStats(statistics.action as unknown as ActionStats & Record<string, unknown>, minActionRange);
    return new DemoDataset(dir, demos.meta.dataset_name, action, { [demos.meta.dataset_name]: { ...statistics, action } }, episodes, steps);
  }

  /** the side of the recording's square frames in pixels (undefined when they are not square) */
  get cameraImageSize(): number | undefined {
    const { width, height } = this.episodes[0];
    return width === height ? width : undefined;
  }

  get instructions(): string[] {
    return [...new Set(this.episodes.map((e) => e.instruction))].sort();
  }

  action(ref: StepRef): number[] {
    return Array.from(this.episodes[ref.episode].actions.subarray(ref.step * 7, ref.step * 7 + 7));
  }

  /** the recording's privileged state of a step's episode (for auxiliary targets; never a policy input) */
  state(ref: StepRef): AuxEpisode {
    return this.episodes[ref.episode].state;
  }

  /** the camera that took a step's frame (for auxiliary targets; never a policy input) */
  camera(ref: StepRef): PinholeCamera {
    return this.episodes[ref.episode].camera;
  }

  instruction(ref: StepRef): string {
    return this.episodes[ref.episode].instruction;
  }

  /** The agent-view frame the expert saw at this step (read from disk). */
  frame(ref: StepRef): RgbImage {
    const e = this.episodes[ref.episode];
    const data = new Uint8Array(e.frameBytes);
    const fd = fs.openSync(e.framePath, 'r'); // opened per read: a recording may hold more episodes than open files allowed
    let read: number;
    try {
      read = fs.readSync(fd, data, 0, e.frameBytes, e.offsets[ref.step]);
    } finally {
      fs.closeSync(fd);
    }
    if (read !== e.frameBytes) throw new UserError(`${e.framePath} is truncated (frame ${ref.step})`);
    return { width: e.width, height: e.height, data };
  }
}
