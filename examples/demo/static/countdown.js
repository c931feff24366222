/* global document, setInterval */
// Counts down each deadline on the demo's page. Served as a file of the page's own origin, since
// the page's Content-Security-Policy (script-src 'self') refuses inline script.

const loadedAt = Date.now();
const deadlines = document.querySelectorAll('[data-remaining-ms]');

/** "in 29:59", "in 11:59:59": whole seconds left, rounded up so it reaches 0:00 at the deadline. */
function format(ms) {
  const total = Math.ceil(ms / 1000);
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = String(total % 60).padStart(2, '0');
  return hours > 0
    ? `in ${hours}:${String(minutes).padStart(2, '0')}:${seconds}`
    : `in ${minutes}:${seconds}`;
}

function tick() {
  const elapsed = Date.now() - loadedAt;
  for (const element of deadlines) {
    const left = Number(element.dataset.remainingMs) - elapsed;
    element.textContent = left > 0 ? format(left) : 'now: reload the page';
  }
}

if (deadlines.length > 0) {
  tick();
  setInterval(tick, 1000);
}
