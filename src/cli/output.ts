/**
 * What the CLI writes: results on stdout (lines for people, or one JSON document with `--json`),
 * notes, errors and progress on stderr.
 *
 * @packageDocumentation
 */
import { printable } from './errors.js';

/** A stream the CLI writes to: `process.stdout` or `process.stderr`. */
export interface TextStream {
  write(text: string): unknown;
  isTTY?: boolean;
}

/** Where the output goes and in which form. */
export interface OutputOptions {
  stdout: TextStream;
  stderr: TextStream;
  /** One JSON document on stdout instead of lines. @defaultValue false */
  json?: boolean;
  /** Progress on stderr even when it is not a terminal. @defaultValue false: only on a terminal */
  progress?: boolean;
}

/**
 * The CLI's output. Lines and notes go through {@link printable}, so that text from a store or
 * an argument cannot drive the terminal.
 */
export class Output {
  readonly json: boolean;
  readonly #stdout: TextStream;
  readonly #stderr: TextStream;
  readonly #progress: boolean;
  #progressShown = false;

  constructor(options: OutputOptions) {
    this.#stdout = options.stdout;
    this.#stderr = options.stderr;
    this.json = options.json === true;
    this.#progress = options.progress === true || this.#stderr.isTTY === true;
  }

  /** A line of the result for people; nothing with `--json`. */
  line(text = ''): void {
    if (!this.json) this.#stdout.write(`${printable(text)}\n`);
  }

  /** Text of the result for people, as it is (such as SQL); nothing with `--json`. */
  text(text: string): void {
    if (!this.json) this.#stdout.write(text);
  }

  /** The result as one JSON document; nothing without `--json`. */
  document(value: unknown): void {
    if (this.json) this.#stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  }

  /** A note on stderr, in both forms: what a person should know that is not the result. */
  note(text: string): void {
    this.#clearProgress();
    this.#stderr.write(`${printable(text)}\n`);
  }

  /** Whether progress is shown: on a terminal, or with `--progress`. */
  get showsProgress(): boolean {
    return this.#progress;
  }

  /** Shows how far a long run is: rewritten in place on a terminal, a line each time otherwise. */
  progress(text: string): void {
    if (!this.#progress) return;
    if (this.#stderr.isTTY === true) {
      this.#stderr.write(`\r${text}\x1b[K`);
      this.#progressShown = true;
    } else {
      this.#stderr.write(`${text}\n`);
    }
  }

  /** Clears the progress line, if one is shown. */
  endProgress(): void {
    this.#clearProgress();
  }

  #clearProgress(): void {
    if (!this.#progressShown) return;
    this.#stderr.write('\r\x1b[K');
    this.#progressShown = false;
  }
}

/** An instant as `2026-12-07 11:55:00Z` (UTC, to the second), or `-` when absent. */
export function formatTime(epochMs: number | undefined): string {
  if (epochMs === undefined || !Number.isFinite(epochMs)) return '-';
  return new Date(epochMs)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d{3}Z$/, 'Z');
}

/** An instant as ISO 8601 for `--json`, or `null` when absent. */
export function isoTime(epochMs: number | undefined): string | null {
  return epochMs === undefined || !Number.isFinite(epochMs)
    ? null
    : new Date(epochMs).toISOString();
}

/** A whole number with thousands separators: `12,345`. */
export function count(n: number): string {
  return n.toLocaleString('en-US');
}

/** `n` and the noun, singular or plural: `1 session`, `3 sessions`. */
export function plural(n: number, noun: string): string {
  return `${count(n)} ${noun}${n === 1 ? '' : 's'}`;
}

/**
 * Rows as aligned columns under a header, two spaces apart; cells are made printable. The last
 * column is not padded, so a long one (a user agent) only makes its own line long.
 */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const cells = [header, ...rows].map((row) => row.map((cell) => printable(cell)));
  const widths = header.map((_, column) =>
    Math.max(...cells.map((row) => (row[column] ?? '').length)),
  );
  return cells.map((row) =>
    row
      .map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column]!)))
      .join('  ')
      .trimEnd(),
  );
}

/** `text` cut into lines of at most `width` characters, at spaces (a longer word keeps its own line). */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  lines.push(line);
  return lines;
}
