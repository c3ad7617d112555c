// The bare side of bench/serve-load.ts: a process of its own (as the server is) that loads the policy as `act`
// does and runs one step per request from its parent, timing policy.predict alone. Keeping the step out of the
// load generator's process means the client side of every HTTP request runs in a process that was idle, as a
// robot's control loop is, and the bare step and the server's step run in processes of the same kind and nice.
// Started by serve-load.ts over IPC: argv = model dir, variant, image file, instruction or '', prompt ids (used
// when the instruction is '').
import { readImageFile } from '../src/io/image.js';
import { instructionInputIds } from '../src/models/prompt.js';
import { loadTokenizer } from '../src/models/tokenizer.js';
import { loadPolicy } from '../src/policy.js';
import { getBackend } from '../src/tensor/backends/index.js';

const [modelDir, variant, imagePath, instruction, ids] = process.argv.slice(2);
if (!process.send) throw new Error('serve-bare-step.ts is started by bench/serve-load.ts');
const image = readImageFile(imagePath);
const policy = loadPolicy(modelDir, variant, { backend: getBackend('auto') });
// the prompt ids the server runs: the instruction tokenized as the server (and act) does, or the given ids
const inputIds = instruction ? instructionInputIds(loadTokenizer(modelDir), instruction) : ids.split(',').map(Number);
process.on('message', () => {
  const start = performance.now();
  policy.predict({ image, inputIds });
  process.send!({ ms: performance.now() - start });
});
process.on('disconnect', () => process.exit(0));
process.send({ ready: true, backend: policy.model.backend.name, variant: policy.variant.name });
