// The checkpoint as a sim policy: same prompt and action as `act --instruction`, runs in the runner (main thread
// and worker threads, same results), one-line errors for a checkpoint whose vocabulary the prompt does not fit.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createPolicyFactory, MODEL_POLICY_MODULE, ModelPolicy } from '../../src/eval/model-policy.js';
import { writePng } from '../../src/io/image.js';
import { openVlaPrompt } from '../../src/models/prompt.js';
import { runEpisodes } from '../../src/sim/runner.js';
import { createEnv } from '../sim/fake-env.js';
import { charTokenizerJson, makeTinyInstructionModel, TINY_OPENVLA_DIR } from './tiny-model.js';

const BIN = fileURLToPath(new URL('../../bin/sqap-vla.js', import.meta.url));
const FAKE_ENV = fileURLToPath(new URL('../sim/fake-env.ts', import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), 'sqap-model-policy-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
const modelDir = makeTinyInstructionModel(scratch);

function cli(...args: string[]) {
  const run = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}

test('prompt ids are BOS, the template character by character, then the space piece (from the vocabulary)', () => {
  const policy = ModelPolicy.load({ model: modelDir, backend: 'ref' });
  const vocab = (charTokenizerJson() as { model: { vocab: Record<string, number> } }).model.vocab;
  const instruction = 'Put the red cube on the plate';
  // Llama-2 legacy normalization: '▁' prepended, spaces become '▁'; no merges, so one id per character
  const text = `\u2581${openVlaPrompt(instruction).replaceAll(' ', '\u2581')}`;
  const expected = [1, ...[...text].map((c) => vocab[c]), vocab['\u2581']];
  assert.deepEqual(policy.promptIds(instruction), expected);
  assert.equal(policy.promptIds(instruction), policy.promptIds(instruction), 'cached per instruction');
});

test('the policy acts as `act --instruction` does on the same image', async () => {
  const env = await createEnv('fake_reach_far', 2, { imageSize: 32 });
  const observation = env.observe({ render: true });
  const imagePath = join(scratch, 'frame.png');
  writePng(imagePath, observation.image);
  const policy = createPolicyFactory({ model: modelDir, backend: 'ref' })(env) as { act: (o: typeof observation) => number[] };
  const action = policy.act(observation);
  const act = cli('act', '--model', modelDir, '--image', imagePath, '--instruction', observation.instruction, '--backend', 'ref', '--json');
  assert.equal(act.code, 0, act.stderr);
  assert.deepEqual(action, JSON.parse(act.stdout.trim().split('\n').at(-1)!).action);
});

test('an instruction override replaces the task instruction (the instruction-swap test), and must not be empty', async () => {
  const env = await createEnv('fake_reach_far', 2, { imageSize: 32 });
  const observation = env.observe({ render: true });
  const other = 'stack the blue cube on the red cube';
  const swapped = createPolicyFactory({ model: modelDir, backend: 'ref', instruction: other })(env) as { act: (o: typeof observation) => number[] };
  const plain = createPolicyFactory({ model: modelDir, backend: 'ref' })(env) as { act: (o: typeof observation) => number[] };
  assert.deepEqual(swapped.act(observation), plain.act({ ...observation, instruction: other }));
  // the tiny model's action does not depend on its prompt, so check which instruction reaches the prompt
  const seen: string[] = [];
  const promptIds = ModelPolicy.prototype.promptIds;
  ModelPolicy.prototype.promptIds = function (this: ModelPolicy, instruction: string) {
    seen.push(instruction);
    return promptIds.call(this, instruction);
  };
  try {
    swapped.act(observation);
    plain.act(observation);
  } finally {
    ModelPolicy.prototype.promptIds = promptIds;
  }
  assert.deepEqual(seen, [other, observation.instruction]);
  assert.notEqual(other, observation.instruction);
  assert.throws(() => createPolicyFactory({ model: modelDir, backend: 'ref', instruction: ' ' }), { name: 'UserError' });
  const empty = cli('sim', 'run', '--task', 'spatial-left-cube-to-plate', '--policy', 'model', '--model', modelDir, '--instruction', '', '--episodes', '1');
  assert.equal(empty.code, 2);
  assert.match(empty.stderr, /--instruction must not be empty/);
  const expertWithInstruction = cli('sim', 'run', '--task', 'spatial-left-cube-to-plate', '--instruction', 'x', '--episodes', '1');
  assert.equal(expertWithInstruction.code, 2);
  assert.match(expertWithInstruction.stderr, /--instruction applies to --policy model/);
});

test('runner: the model policy gives the same episodes in the main thread and in worker threads', async () => {
  const spec = {
    tasks: ['fake_reach_near', 'fake_reach_far'],
    episodes: 2,
    seed: 5,
    envModule: FAKE_ENV,
    policy: { module: MODEL_POLICY_MODULE, options: { model: modelDir, backend: 'native' as const } },
  };
  const inProcess = await runEpisodes({ ...spec, workers: 1 });
  const threaded = await runEpisodes({ ...spec, workers: 2 });
  const strip = (results: typeof inProcess.results) => results.map(({ wallMs: _, ...rest }) => rest);
  assert.deepEqual(strip(threaded.results), strip(inProcess.results));
  assert.equal(inProcess.results.length, 4);
  for (const result of inProcess.results) assert.equal(result.failureReason, undefined);
});

test('a checkpoint whose vocabulary the prompt does not fit fails with one line naming the fix', () => {
  // tiny-openvla has no tokenizer.json: the built-in Llama-2 ids exceed its 576-entry vocabulary
  const policy = ModelPolicy.load({ model: TINY_OPENVLA_DIR, backend: 'ref' });
  assert.throws(() => policy.promptIds('pick up the cube'), /outside the model's vocabulary of 576: .* needs a tokenizer\.json/);
});

test('sim run --policy model: JSON summary names model and variant; flag mistakes are one line, exit 2', () => {
  const run = cli('sim', 'run', '--task', 'spatial-left-cube-to-plate', '--policy', 'model', '--model', modelDir, '--episodes', '1', '--json');
  assert.equal(run.code, 0, run.stderr);
  const summary = JSON.parse(run.stdout.trim().split('\n').at(-1)!);
  assert.equal(summary.policy, 'model');
  assert.equal(summary.variant, 'base');
  assert.equal(summary.workers, 1);
  assert.equal(summary.episodes, 1);
  assert.equal(summary.results[0].failureReason, undefined);
  assert.ok(summary.results[0].steps > 0);

  const cases: [string[], RegExp][] = [
    [['--policy', 'model'], /--policy model needs --model DIR/],
    [['--policy', 'expert', '--model', modelDir], /--model applies to --policy model/],
    [['--policy', 'model', '--model', modelDir, '--variant', 'w4a4+nope'], /unknown part 'nope'/],
    [['--policy', 'model', '--model', join(scratch, 'missing')], /model directory not found/],
  ];
  for (const [flags, message] of cases) {
    const bad = cli('sim', 'run', '--task', 'spatial-left-cube-to-plate', '--episodes', '1', ...flags);
    assert.equal(bad.code, 2, `${flags.join(' ')}: ${bad.stderr}`);
    assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
    assert.match(bad.stderr, message);
  }
});

test('a pruned variant gets the robot context (own end effector + camera) and hands back its mask and timings', async () => {
  const env = await createEnv('fake_reach_far', 4, { imageSize: 32 });
  const observation = env.observe({ render: true });
  const policy = ModelPolicy.load({ model: modelDir, variant: 'sqap@0.5', backend: 'ref' });
  const { action, timingsMs, overlay } = policy.step(observation);
  const [x, y, z] = observation.eePosition;
  const direct = policy.loaded.predict({
    image: observation.image,
    inputIds: policy.promptIds(observation.instruction),
    robot: { eef: [x, y, z], camera: observation.camera },
  });
  assert.deepEqual(action, direct.action);
  assert.equal(direct.keptVisualTokens?.length, 8, 'half of the 16 visual tokens kept');
  assert.ok(overlay, 'pruned steps come with their overlay');
  const drawn = overlay(observation.image);
  assert.deepEqual([drawn.width, drawn.height], [observation.image.width, observation.image.height]);
  assert.notDeepEqual(drawn.data, observation.image.data, 'dropped patches are darkened');
  assert.equal(typeof timingsMs.prefill, 'number');
  assert.equal(typeof timingsMs.decode, 'number');
  assert.equal(ModelPolicy.load({ model: modelDir, backend: 'ref' }).step(observation).overlay, undefined, 'base draws nothing');
});
