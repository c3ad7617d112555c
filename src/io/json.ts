import fs from 'node:fs';
import { UserError } from '../errors.js';

/**
 * Read and parse a JSON file that a user supplied (config.json, preprocessor_config.json, an index.json).
 * `what` names the file's role in messages ("model config", "checkpoint index"). A missing file, a directory,
 * or bad JSON is a UserError naming the path; the parsed value is returned unchecked for the caller to validate.
 */
export function readJsonFile(path: string, what: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UserError(`${what} not found: ${path} does not exist.`);
    if (code === 'EISDIR') throw new UserError(`${what} ${path} is a directory, expected a JSON file.`);
    throw new UserError(`cannot read ${what} ${path} (${code ?? String(error)}).`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new UserError(`${what} ${path} is not valid JSON: ${oneLine((error as Error).message)}.`);
  }
}

/** Make untrusted text safe to embed in a one-line message: no control characters, bounded length. */
export function oneLine(text: string, maxChars = 160): string {
  const flat = text.replace(/[\u0000-\u001f\u007f\u2028\u2029]/g, ' ');
  return flat.length > maxChars ? `${flat.slice(0, maxChars)}...` : flat;
}
