// Command-line parsing for every command: node:util parseArgs (strict), with one-line messages for every mistake.
// A value that starts with '-' after an option that takes one (`--seed -1`, `--input-ids -1,2,3`) is taken as that
// option's value, so the command's own range check answers instead of parseArgs' three-line "ambiguous" note.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UserError } from '../errors.js';

type Options = NonNullable<ParseArgsConfig['options']>;
type ParsedValues<O extends Options> = ReturnType<typeof parseArgs<{ args: string[]; options: O; strict: true; allowPositionals: false }>>['values'];

/** `--name value` pairs whose value starts with '-' (and is not itself an option) become `--name=value`. */
export function joinDashValues(argv: readonly string[], options: Options): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i];
    const name = token.startsWith('--') && !token.includes('=') ? token.slice(2) : undefined;
    const next = argv[i + 1];
    if (name && options[name]?.type === 'string' && next !== undefined && next.startsWith('-') && next !== '--' && !isOptionToken(next, options)) {
      out.push(`${token}=${next}`);
      i++;
    } else {
      out.push(token);
    }
  }
  return out;
}

function isOptionToken(token: string, options: Options): boolean {
  if (token.startsWith('--')) return token.slice(2).split('=')[0] in options;
  return Object.values(options).some((o) => o.short !== undefined && token === `-${o.short}`);
}

/** parseArgs errors as one line that names the command and points at its --help. */
function oneLineParseError(error: unknown, command: string): unknown {
  const code = (error as { code?: string } | null)?.code;
  if (typeof code !== 'string' || !code.startsWith('ERR_PARSE_ARGS')) return error;
  const first = (error as Error).message.split('\n')[0].replace(/\.$/, '');
  const hint = code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL' ? `; see 'sqap-vla ${command} --help'` : '';
  return new UserError(`${command}: ${first}${hint}`);
}

/** Strict parse of a command's options; every mistake is a one-line UserError. */
export function parseOptions<O extends Options>(argv: readonly string[], options: O, command: string): ParsedValues<O> {
  try {
    return parseArgs({ args: joinDashValues(argv, options), options, strict: true, allowPositionals: false }).values;
  } catch (error) {
    throw oneLineParseError(error, command);
  }
}

/** An integer flag: `--flag N` with min <= N <= max (or the fallback when absent). */
export function parseIntegerFlag(value: string | undefined, flag: string, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  const text = value.trim();
  const parsed = Number(text);
  if (!/^[-+]?\d+$/.test(text) || !Number.isSafeInteger(parsed) || parsed < min || parsed > max) {
    throw new UserError(`--${flag} must be an integer from ${min} to ${max}, got '${value}'.`);
  }
  return parsed;
}

/** A number flag: `--flag X` with min <= X <= max, finite (or the fallback when absent). */
export function parseNumberFlag(value: string | undefined, flag: string, fallback: number, min: number, max: number): number;
export function parseNumberFlag(value: string | undefined, flag: string, fallback: undefined, min: number, max: number): number | undefined;
export function parseNumberFlag(value: string | undefined, flag: string, fallback: number | undefined, min: number, max: number): number | undefined {
  if (value === undefined) return fallback;
  const text = value.trim();
  const parsed = Number(text);
  if (text === '' || !Number.isFinite(parsed) || parsed < min || parsed > max) {
    throw new UserError(`--${flag} must be a number from ${min} to ${max}, got '${value}'.`);
  }
  return parsed;
}
