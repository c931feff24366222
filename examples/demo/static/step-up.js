/* global document, fetch, location */
// "Sign out all other sessions" through the JSON API: when the server answers 401 with code
// REAUTH_REQUIRED, the form shows its password field; the password goes to /api/reauth (a new
// session ID, whose cookie the browser keeps), then the action is sent again. Served as a file of
// the page's own origin, since the page's Content-Security-Policy refuses inline script. Without
// script the form posts itself, and the server asks for the password on the next page.

const form = document.getElementById('revoke-others');

function post(path, body) {
  return fetch(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify(body),
  });
}

/** Shows the password field with `message`, ready for the next attempt. */
function askPassword(message) {
  const label = document.getElementById('reauth');
  const input = form.elements.namedItem('password');
  const note = document.getElementById('reauth-message');
  label.hidden = false;
  input.disabled = false;
  input.value = '';
  note.textContent = message;
  note.hidden = false;
  input.focus();
}

async function revokeOthers() {
  const input = form.elements.namedItem('password');
  if (!input.disabled && input.value !== '') {
    const reauth = await post('/api/reauth', { password: input.value });
    if (reauth.status === 401) {
      askPassword('Wrong password: your other sessions are still signed in.');
      return;
    }
    if (!reauth.ok) throw new Error(`re-authentication answered ${reauth.status}`);
  }
  const revoke = await post('/api/sessions/revoke-others', {});
  if (revoke.status === 401) {
    const { code } = await revoke.json();
    if (code === 'REAUTH_REQUIRED') {
      askPassword('Enter your password to sign out your other sessions.');
      return;
    }
  }
  if (!revoke.ok) throw new Error(`sign-out answered ${revoke.status}`);
  location.assign('/?notice=revoked-others');
}

if (form !== null) {
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    // Whatever the script cannot handle, the server's own form handling can.
    revokeOthers().catch(() => form.submit());
  });
}
