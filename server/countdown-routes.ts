// The countdown image of {{countdown until=…}}: GET /c/countdown/<token>.gif draws the time left until the deadline the
// signed token carries, at the moment the email is opened, as an animated GIF in the brand's colours (core/countdown,
// core/countdown-gif). Public: mail clients and their image proxies fetch it without a key, so the signature is the
// authority, and a token that does not verify gets a 404 that says nothing about why.
//
// No per-token rate limit, unlike the tracking routes: every email with the same deadline shares one token, so a limit
// per token would blank the timer for a whole campaign at its busiest, and per client IP it would blank it for every
// reader behind one image proxy (Gmail's). What an open costs is bounded instead: only deadlines we signed are drawn,
// each minute of each is drawn once (the frame cache), and later opens concatenate cached frames.
import express, { type Response, type Router } from 'express';
import { DEFAULT_COUNTDOWN_STYLE, countdownPalette, verifyCountdownToken, type CountdownStyle } from '../core/countdown';
import { CountdownGifs } from '../core/countdown-gif';
import { isMicroflowsError } from '../core/errors';

export interface CountdownRouteDeps {
  /** The secret the send signed the image URL with (the tracking links' secret). */
  signingSecret: string;
  now: () => number;
  /** The brand's colours; default DEFAULT_COUNTDOWN_STYLE. Checked here, so a bad colour stops the server at start. */
  style?: CountdownStyle | null;
  /** The frame cache; one is made when absent. Tests pass theirs to watch what it draws. */
  gifs?: CountdownGifs;
}

const NOT_FOUND = 'Not found: this countdown image link is not valid.\n';

function notFound(res: Response): void {
  res.status(404).set({ 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store, max-age=0' }).send(NOT_FOUND);
}

export function countdownRoutes(deps: CountdownRouteDeps): Router {
  const router = express.Router();
  const style = deps.style ?? DEFAULT_COUNTDOWN_STYLE;
  countdownPalette(style);
  const gifs = deps.gifs ?? new CountdownGifs();

  router.get('/c/countdown/:file', (req, res) => {
    const token = /^(.+)\.gif$/.exec(req.params.file ?? '')?.[1];
    if (token === undefined) return notFound(res);
    let untilMs: number;
    try {
      untilMs = verifyCountdownToken(deps.signingSecret, token);
    } catch (err) {
      if (!isMicroflowsError(err) || err.code !== 'invalid_countdown_token') throw err;
      return notFound(res);
    }
    const gif = gifs.gif(untilMs, deps.now(), style);
    // Each open redraws: no cache along the way may keep an image whose time has moved on.
    res
      .status(200)
      .set({ 'Content-Type': 'image/gif', 'Cache-Control': 'no-store, max-age=0' })
      .send(Buffer.from(gif.buffer, gif.byteOffset, gif.byteLength));
  });

  return router;
}
