/**
 * How the `tessera-session` CLI fails: one line on stderr and an exit code, never a stack trace.
 *
 * @packageDocumentation
 */
import { isSessionError } from '../errors.js';
import { StoreUnreachableError, StoreUrlError } from '../store-url.js';

/** The CLI's exit codes. */
export const EXIT = {
  /** The command did what it was asked; `doctor` found nothing wrong. */
  ok: 0,
  /** Bad arguments, a store without its table, or a problem `doctor` found. */
  failed: 1,
  /** The store could not be reached, or stopped answering. */
  unreachable: 2,
} as const;

/** What went wrong, for `--json` output: a stable word. */
export type CliErrorCode =
  | 'USAGE'
  | 'BAD_STORE_URL'
  | 'UNREACHABLE'
  | 'NO_TABLE'
  | 'UNSUPPORTED'
  | 'INVALID_USER_ID'
  | 'INVALID_OPTION'
  | 'FAILED';

/** A failure the CLI reports as one line, with its exit code. */
export class CliError extends Error {
  override name = 'CliError';

  /**
   * @param code - what went wrong, for `--json`
   * @param message - one line for the operator
   * @param exitCode - @defaultValue {@link EXIT}.failed
   */
  constructor(
    readonly code: CliErrorCode,
    message: string,
    readonly exitCode: number = EXIT.failed,
  ) {
    super(message);
  }
}

/** Socket error codes that mean the server went away or cannot be reached. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
]);

/** Whether `error`, or an error it wraps, is a socket failure. */
function isNetworkFailure(error: unknown): boolean {
  for (let current = error, depth = 0; current instanceof Error && depth < 5; depth++) {
    if (NETWORK_CODES.has(String((current as { code?: unknown }).code))) return true;
    if (current instanceof AggregateError && current.errors.some(isNetworkFailure)) return true;
    current = current.cause;
  }
  return false;
}

/**
 * The error's message on one line, its causes' messages after it (`store get failed: connect
 * ECONNREFUSED ...`), control characters escaped.
 */
export function oneLine(error: unknown): string {
  const parts: string[] = [];
  for (let current = error, depth = 0; current !== undefined && depth < 5; depth++) {
    const text =
      current instanceof AggregateError && current.message === ''
        ? current.errors.map((inner) => oneLine(inner)).join('; ')
        : current instanceof Error
          ? current.message
          : String(current);
    if (text !== '' && !parts.includes(text)) parts.push(text);
    current = current instanceof Error ? current.cause : undefined;
  }
  return printable(parts.join(': ').replace(/\s+/g, ' ').trim() || 'unknown error');
}

/**
 * `text` with control characters (C0, DEL, C1) shown as `\xNN`, so that nothing read from a
 * store, such as a user agent, can drive the terminal.
 */
export function printable(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    out +=
      code < 0x20 || (code >= 0x7f && code <= 0x9f)
        ? `\\x${code.toString(16).padStart(2, '0')}`
        : text[i];
  }
  return out;
}

/** Any error as a {@link CliError}: unreachable stores exit 2, everything else 1. */
export function asCliError(error: unknown): CliError {
  if (error instanceof CliError) return error;
  if (error instanceof StoreUnreachableError) {
    return new CliError('UNREACHABLE', oneLine(error), EXIT.unreachable);
  }
  if (error instanceof StoreUrlError) return new CliError('BAD_STORE_URL', oneLine(error));
  if (isSessionError(error, 'STORE_UNAVAILABLE') || isNetworkFailure(error)) {
    return new CliError('UNREACHABLE', oneLine(error), EXIT.unreachable);
  }
  if (isSessionError(error, 'INVALID_USER_ID'))
    return new CliError('INVALID_USER_ID', oneLine(error));
  if (isSessionError(error, 'INVALID_OPTION'))
    return new CliError('INVALID_OPTION', oneLine(error));
  if (isSessionError(error, 'UNSUPPORTED')) return new CliError('UNSUPPORTED', oneLine(error));
  return new CliError('FAILED', oneLine(error));
}
