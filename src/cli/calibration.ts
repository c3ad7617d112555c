// Calibration and evaluation inputs for commands: --calib DIR (a `sim record` dataset or a folder of images with
// instructions, src/quant/calibration.ts) or, by default, frames rendered from the tabletop testbed with their task
// instructions (the CLI may use the simulator; src/quant may not).
import { needsCalibration } from '../policy.js';
import { DEFAULT_CALIBRATION_SAMPLES, readCalibrationDir, type CalibrationSample } from '../quant/calibration.js';
import type { Variant } from '../variant.js';

/** N initial frames of the testbed: task i mod tasks, seed `seed + i`, 224x224 agent view, with the task's instruction. */
export async function renderTestbedFrames(count: number, seed = 0): Promise<CalibrationSample[]> {
  const [{ createEnv }, { listTasks }] = await Promise.all([import('../sim/env.js'), import('../sim/tasks.js')]);
  const tasks = listTasks();
  const samples: CalibrationSample[] = [];
  for (let i = 0; i < count; i++) {
    const env = await createEnv(tasks[i % tasks.length].id, seed + i);
    try {
      const observation = env.observe();
      samples.push({ image: observation.image, instruction: observation.instruction });
    } finally {
      env.close();
    }
  }
  return samples;
}

/** Calibration samples from --calib when given, else the default rendered frames. */
export async function calibrationSamples(calibDir: string | undefined, count = DEFAULT_CALIBRATION_SAMPLES): Promise<CalibrationSample[]> {
  return calibDir ? readCalibrationDir(calibDir, count) : renderTestbedFrames(count, 1000);
}

/** Samples when loading any of `variants` from `modelDir` quantizes with GPTQ at load; undefined otherwise. */
export async function calibrationIfNeeded(modelDir: string, variants: Variant[], calibDir?: string): Promise<CalibrationSample[] | undefined> {
  return variants.some((v) => needsCalibration(modelDir, v)) ? calibrationSamples(calibDir) : undefined;
}
