// Loading the MuJoCo WebAssembly module (mujoco-js) once per process and models from MJCF text.
// mujoco-js has no renderer; images come from src/sim/render.ts.
import loadMujocoFactory from 'mujoco-js';
import type { MainModule, MjModel } from 'mujoco-js';

export type { MainModule, MjModel, MjData } from 'mujoco-js';

/** Folder in the module's in-memory file system where MJCF (and any assets) are written. */
const MODEL_DIR = '/sqap-models';

let modulePromise: Promise<MainModule> | undefined;
let fileCounter = 0;

/** The MuJoCo module, instantiated on first use (~0.2 s) and shared afterwards. */
export function loadMujoco(): Promise<MainModule> {
  modulePromise ??= loadMujocoFactory().then((mujoco) => {
    mujoco.FS.mkdir(MODEL_DIR);
    return mujoco;
  });
  return modulePromise;
}

/** mj_name2id for a camera; throws when the model has no camera of that name. */
export function cameraId(mujoco: MainModule, model: MjModel, name: string): number {
  const id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA.value, name);
  if (id < 0) throw new Error(`MuJoCo model has no camera named '${name}'.`);
  return id;
}

/**
 * Compiles MJCF text into a model. The XML is written to a fresh file in the module's memory file system and removed
 * after loading. The caller owns the model and must call model.delete().
 */
export function loadModelFromXml(mujoco: MainModule, xml: string): MjModel {
  const path = `${MODEL_DIR}/model-${fileCounter++}.xml`;
  mujoco.FS.writeFile(path, xml);
  let model: MjModel | null | undefined;
  try {
    model = mujoco.MjModel.loadFromXML(path);
  } catch (error) {
    // The WebAssembly build throws a C++ exception object (e.g. mjXError) whose text is not reachable from JS.
    const kind = (error as { name?: string }).name ?? String(error);
    throw new Error(`MuJoCo could not compile the MJCF model (${kind}); check the XML against the MJCF schema.`);
  } finally {
    mujoco.FS.unlink(path);
  }
  if (!model) throw new Error('MuJoCo could not compile the MJCF model.');
  return model;
}
