// Output paths a user names (--out, --frames): checked before any work starts, created only when the work begins,
// and removed again when the work fails, so a failed command leaves nothing behind.
import fs from 'node:fs';
import nodePath from 'node:path';
import { UserError } from '../errors.js';

/** Kernel and device trees: writing there is never what a user meant (and mkdir in /proc can spin). */
const SYSTEM_TREES = ['/proc', '/sys', '/dev'];

function kindOf(stat: fs.Stats): string {
  if (stat.isFile()) return 'a file';
  if (stat.isDirectory()) return 'a directory';
  if (stat.isCharacterDevice() || stat.isBlockDevice()) return 'a device';
  if (stat.isFIFO()) return 'a pipe';
  if (stat.isSocket()) return 'a socket';
  return 'not a regular file or directory';
}

function statOrUndefined(path: string): fs.Stats | undefined {
  try {
    return fs.statSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ENOTDIR') return undefined; // a parent is a file; reported by the ancestor walk
    throw new UserError(`cannot check ${path} (${code ?? String(error)}).`);
  }
}

function refuseSystemTree(path: string, flag: string): void {
  let real = path;
  try {
    real = fs.realpathSync(path);
  } catch {
    // not there yet: the lexical path is what will be created
  }
  for (const tree of SYSTEM_TREES) {
    if (real === tree || real.startsWith(`${tree}/`) || path === tree || path.startsWith(`${tree}/`)) {
      throw new UserError(`${flag} ${path} is under ${tree}, a system tree; choose a folder of your own.`);
    }
  }
}

/** The nearest existing ancestor of `path` must be a writable directory (checked when `path` does not exist). */
function checkCreatable(path: string, flag: string): void {
  let ancestor = nodePath.dirname(path);
  for (;;) {
    const stat = statOrUndefined(ancestor);
    if (stat) {
      if (!stat.isDirectory()) throw new UserError(`${flag} ${path} cannot be created: ${ancestor} is ${kindOf(stat)}, not a directory.`);
      try {
        fs.accessSync(ancestor, fs.constants.W_OK);
      } catch {
        throw new UserError(`${flag} ${path} cannot be created: ${ancestor} is not writable.`);
      }
      return;
    }
    const parent = nodePath.dirname(ancestor);
    if (parent === ancestor) return;
    ancestor = parent;
  }
}

/** Checks that `path` is, or can be created as, a writable directory. Returns the absolute path. */
export function checkOutputDir(path: string, flag = '--out'): string {
  const full = nodePath.resolve(path);
  const stat = statOrUndefined(full);
  if (stat && !stat.isDirectory()) throw new UserError(`${flag} ${path} is ${kindOf(stat)}, not a directory; name a new or existing folder.`);
  refuseSystemTree(full, flag);
  if (stat) {
    try {
      fs.accessSync(full, fs.constants.W_OK);
    } catch {
      throw new UserError(`${flag} ${path} is not writable.`);
    }
  } else {
    checkCreatable(full, flag);
  }
  return full;
}

/** Checks that `path` can be written as a file (a new one, or an existing regular file). Returns the absolute path. */
export function checkOutputFile(path: string, flag = '--out'): string {
  const full = nodePath.resolve(path);
  const stat = statOrUndefined(full);
  if (stat && !stat.isFile()) throw new UserError(`${flag} ${path} is ${kindOf(stat)}, not a file.`);
  refuseSystemTree(full, flag);
  if (stat) {
    try {
      fs.accessSync(full, fs.constants.W_OK);
    } catch {
      throw new UserError(`${flag} ${path} is not writable.`);
    }
  } else {
    checkCreatable(full, flag);
  }
  return full;
}

/**
 * Creates the output directory (after checkOutputDir) and remembers what it created, so that `discard()` after a
 * failure removes exactly that: the folders this call made, or the files written into a folder that existed.
 */
export class OutputDir {
  private readonly createdRoot: string | undefined;
  private readonly written = new Set<string>();

  constructor(
    readonly path: string,
    flag = '--out',
  ) {
    this.path = checkOutputDir(path, flag);
    let root: string | undefined;
    for (let p = this.path; !fs.existsSync(p); p = nodePath.dirname(p)) root = p;
    this.createdRoot = root;
    fs.mkdirSync(this.path, { recursive: true });
  }

  /** The path of `name` inside the folder, remembered for discard(). */
  file(name: string): string {
    const path = nodePath.join(this.path, name);
    this.written.add(path);
    return path;
  }

  /** Removes what this run made: the created folders, else the files it wrote. Never throws. */
  discard(): void {
    try {
      if (this.createdRoot) fs.rmSync(this.createdRoot, { recursive: true, force: true });
      else for (const path of this.written) fs.rmSync(path, { recursive: true, force: true });
    } catch {
      // best effort: the original error is what the user needs to see
    }
  }
}
