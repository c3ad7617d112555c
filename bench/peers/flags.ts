// Flag parsing and the error exit shared by the bench/peers scripts: strict node:util parseArgs, every mistake one
// line naming the script, exit status 2 (as the sqap-vla CLI does); anything else is a bug and keeps its stack.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { joinDashValues } from '../../src/cli/args.js';
import { UserError } from '../../src/errors.js';

type Options = NonNullable<ParseArgsConfig['options']>;

export function parseFlags<O extends Options>(argv: readonly string[], options: O, script: string) {
  try {
    return parseArgs({ args: joinDashValues(argv, options), options, strict: true, allowPositionals: false }).values;
  } catch (error) {
    const code = (error as { code?: string } | null)?.code;
    if (typeof code !== 'string' || !code.startsWith('ERR_PARSE_ARGS')) throw error;
    throw new UserError(`${(error as Error).message.split('\n')[0].replace(/\.$/, '')}; see '${script} --help'`);
  }
}

/** Runs a script's main; a UserError prints `script: message` and exits 2. */
export async function runMain(script: string, main: () => number | Promise<number>): Promise<void> {
  try {
    process.exitCode = await main();
  } catch (error) {
    if (!(error instanceof UserError)) throw error;
    console.error(`${script}: ${error.message}`);
    process.exitCode = 2;
  }
}
