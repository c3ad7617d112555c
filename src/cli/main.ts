import { UserError } from '../errors.js';

const USAGE = `usage: sqap-vla <command> [options]

commands:
  act        run a policy on one image and print the 7-D action
  inspect    print a checkpoint's architecture, sizes and dtypes
  convert    re-save a checkpoint in bf16/f16/f32, sharded
  quantize   quantize a checkpoint's language model (w8a8, w4a8, w4a4, w4a16; had; gptq) and save it
  compare    fidelity of variants against base: token agreement, logit cosine, action difference
  sim        the tabletop simulator: tasks, run, render, record
  synth      write a random-weight OpenVLA checkpoint with real shapes (for benchmarks)
  bench      time variants of a policy side by side (vision, prefill, decode, memory)
  train      train a policy on recorded demonstrations (behaviour cloning)
  serve      serve a policy over HTTP (OpenVLA deploy.py compatible POST /act)
  eval       closed-loop success of variants on the same episodes, with a report
  demo       one episode of base and of the SQAP variant side by side, as an animated GIF

Run 'sqap-vla <command> --help' for a command's options.`;

type CommandRunner = (argv: string[]) => Promise<number>;

// Commands load lazily so that `sqap-vla sim ...` never pays for the model code and vice versa.
const COMMANDS: Record<string, () => Promise<CommandRunner>> = {
  act: async () => (await import('./act.js')).runActCommand,
  inspect: async () => (await import('./inspect.js')).runInspectCommand,
  convert: async () => (await import('./convert.js')).runConvertCommand,
  quantize: async () => (await import('./quantize.js')).runQuantizeCommand,
  compare: async () => (await import('./compare.js')).runCompareCommand,
  sim: async () => (await import('./sim.js')).runSimCommand,
  synth: async () => (await import('./synth.js')).runSynthCommand,
  bench: async () => (await import('./bench.js')).runBenchCommand,
  train: async () => (await import('./train.js')).runTrainCommand,
  serve: async () => (await import('./serve.js')).runServeCommand,
  eval: async () => (await import('./eval.js')).runEvalCommand,
  demo: async () => (await import('./demo.js')).runDemoCommand,
};

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    console.log(USAGE);
    return command ? 0 : 2;
  }
  const load = COMMANDS[command];
  if (!load) {
    console.error(`sqap-vla: unknown command '${command}' (commands: ${Object.keys(COMMANDS).join(', ')})`);
    return 2;
  }
  try {
    return await (await load())(rest);
  } catch (error) {
    return reportError(error);
  }
}

/** One clear line for errors a user can cause; a stack for bugs. */
export function reportError(error: unknown): number {
  if (error instanceof UserError || isParseArgsError(error)) {
    console.error(`sqap-vla: ${(error as Error).message.split('\n')[0]}`);
    return 2;
  }
  console.error(error);
  return 1;
}

function isParseArgsError(error: unknown): boolean {
  const code = (error as { code?: string } | null)?.code;
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS');
}
