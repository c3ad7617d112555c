// The README's library example as plain JavaScript: `node examples/act.mjs` runs it on the compiled package
// (dist/, built by `npm ci`), no TypeScript loader involved. test/cli/library.test.ts runs it.
import { OpenVla, getBackend, readImageFile } from 'sqap-vla';

const model = OpenVla.load('models/tiny-openvla', getBackend('auto'));
const result = model.predictAction({
  image: readImageFile('models/tiny-openvla/image.png'),
  inputIds: [1, 40, 77, 300, 9, 123, 56, 201, 88, 14, 3],
});
console.log(result.action, result.actionTokenIds);
