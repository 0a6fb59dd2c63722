// What the browser keeps for this tab (sessionStorage): the token, and which
// chat is open, so a reload comes back to it.

const SESSION_KEY = "chatsio.session";
const OPEN_KEY = "chatsio.open";

/** The stored {token, username, expires_at}, unless missing or expired. */
export function loadSession() {
  try {
    const session = JSON.parse(sessionStorage.getItem(SESSION_KEY));
    if (session?.token && Date.parse(session.expires_at) > Date.now()) return session;
  } catch {
    // Unreadable: treat as logged out.
  }
  return null;
}

export function saveSession(session) {
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
}

export function clearSession() {
  sessionStorage.removeItem(SESSION_KEY);
  sessionStorage.removeItem(OPEN_KEY);
}

/** Remember the open chat's id (null: none is open). */
export function rememberOpen(id) {
  if (id) sessionStorage.setItem(OPEN_KEY, id);
  else sessionStorage.removeItem(OPEN_KEY);
}

/** The chat that was open before a reload, or null. */
export function rememberedOpen() {
  return sessionStorage.getItem(OPEN_KEY);
}
