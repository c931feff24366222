/**
 * What the middleware does to a response: the session cookie, set just before the headers go
 * out, and the end held back until the store has answered.
 *
 * @packageDocumentation
 */
import type { ServerResponse } from 'node:http';

/** What {@link beforeEnd} asks of the request's session. @internal */
export interface EndingSession {
  /** What must happen in the store before the response may finish, if anything. */
  endOperation(): ((done: (err?: unknown) => void) => void) | undefined;
  /** Reports an error that came after the status and headers went out. */
  failedLate(error: unknown): void;
}

/** Adds a Set-Cookie value, keeping the ones already set. @internal */
export function appendSetCookie(res: ServerResponse, value: string): void {
  const previous = res.getHeader('Set-Cookie');
  const list =
    previous === undefined ? [] : Array.isArray(previous) ? previous : [String(previous)];
  res.setHeader('Set-Cookie', [...list, value]);
  // A response that sets a session cookie must not be stored by a shared cache; an explicit choice stays.
  if (!res.hasHeader('Cache-Control')) res.setHeader('Cache-Control', 'no-store');
}

/** Applies the headers given to `writeHead` with `setHeader`, so a listener sees them all. */
function applyWriteHeadHeaders(res: ServerResponse, headers: unknown): void {
  if (Array.isArray(headers)) {
    const grouped = new Map<string, string[]>();
    const pairs: unknown[][] = Array.isArray(headers[0])
      ? (headers as unknown[][])
      : Array.from({ length: Math.floor(headers.length / 2) }, (_, i) => [
          headers[2 * i],
          headers[2 * i + 1],
        ]);
    for (const [key, value] of pairs) {
      const name = String(key);
      const list = grouped.get(name.toLowerCase()) ?? [];
      list.push(String(value));
      grouped.set(name.toLowerCase(), list);
    }
    for (const [key, values] of grouped)
      res.setHeader(key, values.length === 1 ? values[0]! : values);
  } else if (typeof headers === 'object' && headers !== null) {
    for (const [key, value] of Object.entries(headers)) {
      if (value !== undefined) res.setHeader(key, value as string | number | string[]);
    }
  }
}

type End = (...args: unknown[]) => ServerResponse;
type Write = (chunk: unknown, encoding?: unknown) => boolean;

/** Calls `listener` once, just before the response's headers are written. @internal */
export function beforeHeaders(res: ServerResponse, listener: () => void): void {
  const writeHead = res.writeHead as (...args: unknown[]) => ServerResponse;
  let fired = false;
  res.writeHead = function (
    this: ServerResponse,
    statusCode: number,
    ...rest: unknown[]
  ): ServerResponse {
    if (fired) return writeHead.call(this, statusCode, ...rest);
    fired = true;
    const reason = typeof rest[0] === 'string' ? rest[0] : undefined;
    applyWriteHeadHeaders(this, reason === undefined ? rest[0] : rest[1]);
    this.statusCode = statusCode;
    listener();
    return reason === undefined
      ? writeHead.call(this, this.statusCode)
      : writeHead.call(this, this.statusCode, reason);
  } as typeof res.writeHead;
}

/**
 * Holds back the end of the response until the store has answered: headers and all but the last
 * byte go out now (so `res.headersSent` and header errors behave as without sessions), the last
 * byte when the save, touch or destroy is done. A store error is then reported as late.
 * @internal
 */
export function beforeEnd(res: ServerResponse, handler: EndingSession): void {
  const end = res.end as unknown as End;
  const write = res.write as unknown as Write;
  let ended = false;
  res.end = function (
    this: ServerResponse,
    chunk?: unknown,
    encoding?: unknown,
    callback?: unknown,
  ): ServerResponse {
    if (ended) return this;
    ended = true;
    let done: unknown = callback;
    if (typeof chunk === 'function') {
      done = chunk;
      chunk = undefined;
      encoding = undefined;
    } else if (typeof encoding === 'function') {
      done = encoding;
      encoding = undefined;
    }
    const finalArgs = (rest: unknown[]) => (typeof done === 'function' ? [...rest, done] : rest);
    const operation = handler.endOperation();
    if (operation === undefined) {
      return end.apply(
        this,
        finalArgs(chunk === undefined ? [] : encoding === undefined ? [chunk] : [chunk, encoding]),
      );
    }
    if (!this.headersSent) this.writeHead(this.statusCode);
    let last: unknown[] = [];
    if (chunk !== undefined && chunk !== null) {
      const length = Number(this.getHeader('Content-Length'));
      let bytes: Buffer | undefined;
      if (!Number.isNaN(length) && length > 0) {
        bytes =
          typeof chunk === 'string'
            ? Buffer.from(chunk, encoding as BufferEncoding | undefined)
            : chunk instanceof Uint8Array
              ? Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
              : undefined;
      }
      if (bytes !== undefined && bytes.length > 0) {
        write.call(this, bytes.subarray(0, bytes.length - 1));
        last = [bytes.subarray(bytes.length - 1)];
      } else {
        write.call(this, chunk, encoding);
      }
    }
    operation((err) => {
      if (err) handler.failedLate(err);
      end.apply(res, finalArgs(last));
    });
    return this;
  } as typeof res.end;
}
