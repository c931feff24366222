import { serve } from '@hono/node-server';
import type { RunningServer } from './suite.js';

/**
 * Serves a Fetch handler over real HTTP on 127.0.0.1 with @hono/node-server, on an ephemeral
 * port. The handler's second argument is the server's bindings (`{ incoming, outgoing }`).
 * Global Request/Response are left alone so the tests' own fetch is untouched.
 */
export function serveFetch(
  fetch: (request: Request, env: any) => Response | Promise<Response>,
): Promise<RunningServer> {
  return new Promise((resolve) => {
    const server = serve(
      { fetch, port: 0, hostname: '127.0.0.1', overrideGlobalObjects: false },
      (info) => {
        resolve({
          url: `http://127.0.0.1:${info.port}`,
          close: () => new Promise<void>((done) => server.close(() => done())),
        });
      },
    );
  });
}
