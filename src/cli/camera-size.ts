// The camera size a closed-loop command (sim run, sim record --policy model, eval, demo) renders at: --image-size when
// given; else, with a checkpoint as the policy, the size its training frames had (config.json's
// sqap_vla_camera_image_size, written by `train`), so that a policy trained on 112 px renders sees 112 px renders and
// not a 224 px render resized to its input (different pixels: the rasterizer's edges and the resize's filtering);
// else the testbed's default (undefined here), 224.
import fs from 'node:fs';
import nodePath from 'node:path';
import { UserError } from '../errors.js';
import { readJsonFile } from '../io/json.js';
import { parseOpenVlaConfig } from '../models/openvla.js';

export function closedLoopImageSize(flag: number | undefined, modelDir: string | undefined, range: { min: number; max: number }): number | undefined {
  if (flag !== undefined || modelDir === undefined) return flag;
  const path = nodePath.join(modelDir, 'config.json');
  if (!fs.existsSync(path)) return undefined; // the policy loader reports the missing checkpoint in its own words
  const size = parseOpenVlaConfig(readJsonFile(path, 'model config'), path).cameraImageSize;
  if (size !== undefined && (size < range.min || size > range.max)) {
    throw new UserError(`${path}: sqap_vla_camera_image_size ${size} is outside the testbed's ${range.min}-${range.max} px; pass --image-size PX`);
  }
  return size;
}
