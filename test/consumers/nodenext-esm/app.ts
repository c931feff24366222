// An Express application written for express-session and @types/express-session (their store
// packages included), with only its import switched to tessera-session/express-session.
import connectPgSimple from 'connect-pg-simple';
import SequelizeStoreInit from 'connect-session-sequelize';
import express from 'express';
import realSession from 'express-session';
import MySQLStoreFactory from 'express-mysql-session';
import createMemoryStore from 'memorystore';
import { Sequelize } from 'sequelize';
import session, {
  Cookie,
  MemoryStore,
  Session,
  Store,
  toExpressSessionStore,
  type CookieOptions,
  type SessionData,
  type SessionOptions,
} from 'tessera-session/express-session';
import { MemoryStore as TesseraMemoryStore } from 'tessera-session/stores/memory';

// Keys declared on this module, and (unchanged from before the switch) on 'express-session'.
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

// The store packages' factories take the drop-in where they took express-session.
const PgStore = connectPgSimple(session);
const MemoryStoreFromPackage = createMemoryStore(session);
const MySQLStore = MySQLStoreFactory(session);
const SequelizeStore = SequelizeStoreInit(session.Store);

const cookie: CookieOptions = { maxAge: 3_600_000, sameSite: 'lax', secure: 'auto' };
const options: SessionOptions = {
  secret: [process.env.SESSION_SECRET ?? 'a development secret of 32 bytes!', 'an older secret'],
  resave: false,
  saveUninitialized: false,
  cookie,
};

const app = express();
app.use(session({ ...options, store: new PgStore({ conString: 'postgres://localhost/app' }) }));
app.use(session({ ...options, store: new MemoryStoreFromPackage({ checkPeriod: 86_400_000 }) }));
app.use(session({ ...options, store: new MySQLStore({ host: 'localhost', database: 'app' }) }));
app.use(
  session({ ...options, store: new SequelizeStore({ db: new Sequelize('sqlite::memory:') }) }),
);
app.use(session({ ...options, store: new MemoryStore() }));
app.use(session({ ...options, cookie: (req) => ({ secure: req.secure }) }));
// A Tessera store under the real express-session, through the bridge.
app.use(realSession({ secret: 'x', store: toExpressSessionStore(new TesseraMemoryStore()) }));

/** A store written as express-session's documentation shows, on the drop-in's Store. */
class MapStore extends Store {
  readonly map = new Map<string, string>();

  get(sid: string, callback: (err: unknown, session?: SessionData | null) => void): void {
    const json = this.map.get(sid);
    callback(null, json === undefined ? null : (JSON.parse(json) as SessionData));
  }

  set(sid: string, data: SessionData, callback?: (err?: unknown) => void): void {
    this.map.set(sid, JSON.stringify(data));
    callback?.();
  }

  destroy(sid: string, callback?: (err?: unknown) => void): void {
    this.map.delete(sid);
    callback?.();
  }
}
app.use(session({ ...options, store: new MapStore() }));

function describeSession(current: Session & Partial<SessionData>, store: Store): string {
  const sessionCookie: Cookie = current.cookie;
  return `${current.id} ${sessionCookie.maxAge ?? 'browser session'} ${store.listenerCount('connect')}`;
}

app.get('/', (req, res, next) => {
  req.session.views = (req.session.views ?? 0) + 1;
  // @ts-expect-error -- keys declared on either module keep their declared types
  req.session.user = 42;
  const user: string | undefined = req.session.user;
  const id: string = req.sessionID;
  req.session.save((err) => {
    if (err) return next(err);
    res.send(
      `${req.session.views} ${user ?? 'anonymous'} ${id} ${describeSession(req.session, req.sessionStore)}`,
    );
  });
});

app.post('/login', (req, res, next) => {
  req.session.regenerate((err) => {
    if (err) return next(err);
    req.session.user = 'ada';
    res.redirect('/');
  });
});

export default app;
