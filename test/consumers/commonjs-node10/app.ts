// A CommonJS Express application written for express-session and @types/express-session, with
// only its import switched to tessera-session/express-session (moduleResolution node10: typesVersions).
import connectPgSimple from 'connect-pg-simple';
import SequelizeStoreInit from 'connect-session-sequelize';
import express from 'express';
import realSession from 'express-session';
import MySQLStoreFactory from 'express-mysql-session';
import createMemoryStore from 'memorystore';
import { Sequelize } from 'sequelize';
// eslint-disable-next-line @typescript-eslint/no-require-imports -- the CommonJS form under test
import session = require('tessera-session/express-session');
import { MemoryStore, Store, type SessionData } from 'tessera-session/express-session';

declare module 'tessera-session/express-session' {
  interface SessionData {
    views: number;
  }
}
declare module 'express-session' {
  interface SessionData {
    user: string;
  }
}

const PgStore = connectPgSimple(session);
const MemoryStoreFromPackage = createMemoryStore(session);
const MySQLStore = MySQLStoreFactory(session);
const SequelizeStore = SequelizeStoreInit(session.Store);

// The namespace holds the types, as @types/express-session's does.
const options: session.SessionOptions = {
  secret: 'a development secret of 32 bytes!',
  resave: false,
  saveUninitialized: false,
  cookie: { maxAge: 3_600_000, sameSite: 'lax' } satisfies session.CookieOptions,
};

/** A Tessera store, for the bridge (the store modules themselves are ES modules only). */
declare const tesseraStore: Parameters<typeof session.toExpressSessionStore>[0];

const app = express();
app.use(session({ ...options, store: new PgStore({ conString: 'postgres://localhost/app' }) }));
app.use(session({ ...options, store: new MemoryStoreFromPackage({ checkPeriod: 86_400_000 }) }));
app.use(session({ ...options, store: new MySQLStore({ host: 'localhost', database: 'app' }) }));
app.use(
  session({ ...options, store: new SequelizeStore({ db: new Sequelize('sqlite::memory:') }) }),
);
app.use(session({ ...options, store: new MemoryStore({ maxSessions: 10_000 }) }));
app.use(realSession({ secret: 'x', store: session.toExpressSessionStore(tesseraStore) }));

/** An old-style store on the drop-in's Store, as stores written for express-session are. */
class ListStore extends session.Store {
  readonly sessions: Record<string, SessionData> = {};

  get(sid: string, callback: (err: unknown, data?: SessionData | null) => void): void {
    callback(null, this.sessions[sid] ?? null);
  }

  set(sid: string, data: SessionData, callback?: (err?: unknown) => void): void {
    this.sessions[sid] = data;
    callback?.();
  }

  destroy(sid: string, callback?: (err?: unknown) => void): void {
    delete this.sessions[sid];
    callback?.();
  }
}
const listStore: Store = new ListStore();
app.use(session({ ...options, store: listStore }));

app.get('/', (req, res) => {
  req.session.views = (req.session.views ?? 0) + 1;
  // @ts-expect-error -- keys declared on either module keep their declared types
  req.session.user = 42;
  const current: session.Session = req.session;
  const cookie: session.Cookie = current.cookie;
  const user: string | undefined = req.session.user;
  res.send(`${req.session.views} ${user ?? 'anonymous'} ${req.sessionID} ${cookie.path}`);
});

export = app;
