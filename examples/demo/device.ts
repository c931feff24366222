/**
 * A short name for the device behind a User-Agent header ("Chrome on Linux"), for the demo's
 * session list.
 */

/**
 * Browsers, tried in order: a browser's User-Agent also names the ones it descends from (Edge
 * and Opera say Chrome and Safari, Chrome says Safari), so the most specific comes first.
 */
const BROWSERS: ReadonlyArray<readonly [name: string, tokens: readonly string[]]> = [
  ['Edge', ['Edg/', 'EdgA/', 'EdgiOS/', 'Edge/']],
  ['Opera', ['OPR/', 'Opera/']],
  ['Samsung Internet', ['SamsungBrowser/']],
  ['Firefox', ['Firefox/', 'FxiOS/']],
  ['Chrome', ['Chrome/', 'CriOS/', 'Chromium/']],
  ['Safari', ['Safari/']],
];

/** Systems, tried in order: Android says Linux, and iOS says "like Mac OS X". */
const SYSTEMS: ReadonlyArray<readonly [name: string, tokens: readonly string[]]> = [
  ['Windows', ['Windows']],
  ['Android', ['Android']],
  ['iOS', ['iPhone', 'iPad', 'iPod']],
  ['ChromeOS', ['CrOS']],
  ['macOS', ['Macintosh', 'Mac OS X']],
  ['Linux', ['Linux', 'X11']],
];

/** Only the start of a header is read: browsers put everything that matters there. */
const READ_LIMIT = 512;
/** A client that is no browser is named by its first product token ("curl/8.5" is curl). */
const PRODUCT = /^[A-Za-z][A-Za-z0-9._-]{0,39}(?=\/|$)/;

function firstMatch(
  text: string,
  table: ReadonlyArray<readonly [string, readonly string[]]>,
): string | undefined {
  for (const [name, tokens] of table) {
    if (tokens.some((token) => text.includes(token))) return name;
  }
  return undefined;
}

/**
 * Names the browser and system of a User-Agent header, such as "Chrome on Linux", "Firefox on
 * Windows" or "curl"; "Unknown device" when it says nothing recognisable. Reads at most the first
 * 512 characters, with substring searches only, so any input takes time linear in that bound.
 * The answer holds only letters, digits, spaces and `._-`, at most 60 characters.
 */
export function deviceName(userAgent: string | null | undefined): string {
  const text = (userAgent ?? '').slice(0, READ_LIMIT);
  const system = firstMatch(text, SYSTEMS);
  let browser = firstMatch(text, BROWSERS);
  if (browser === undefined) {
    const product = PRODUCT.exec(text)?.[0];
    // Every browser's header starts with "Mozilla/5.0", which names none of them.
    if (product !== undefined && product !== 'Mozilla') browser = product;
  }
  if (browser !== undefined) return system === undefined ? browser : `${browser} on ${system}`;
  return system === undefined ? 'Unknown device' : `A browser on ${system}`;
}
