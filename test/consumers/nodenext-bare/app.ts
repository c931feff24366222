// An Express application on the drop-in without @types/express-session installed: the package
// itself types req.session on Express's Request, with the keys declared on its SessionData.
import express from 'express';
import session, { MemoryStore, type SessionData } from 'tessera-session/express-session';

declare module 'tessera-session/express-session' {
  interface SessionData {
    views: number;
    cart: string[];
  }
}

const app = express();
app.use(
  session({
    secret: process.env.SESSION_SECRET ?? 'a development secret of 32 bytes!',
    store: new MemoryStore({ maxSessions: 10_000 }),
    resave: false,
    saveUninitialized: false,
    genid: (req) => `${req.headers['x-request-id'] ?? ''}${Date.now()}`,
  }),
);

app.get('/', (req, res) => {
  req.session.views = (req.session.views ?? 0) + 1;
  const cart: string[] = req.session.cart ?? [];
  const data: Partial<SessionData> = req.session;
  // @ts-expect-error -- a declared key keeps its declared type
  req.session.views = 'many';
  res.json({ views: req.session.views, cart, id: req.sessionID, maxAge: data.cookie?.maxAge });
});

export default app;
