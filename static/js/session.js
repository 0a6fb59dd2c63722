// What the browser keeps: the token for this tab (sessionStorage), and how far
// the user has read each chat (localStorage, per user).

const SESSION_KEY = "chatsio.session";

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
}

/** Read marks: chat id -> the last seq the user has seen. */
export class ReadMarks {
  constructor(username) {
    this.key = `chatsio.read.${username}`;
    try {
      this.marks = JSON.parse(localStorage.getItem(this.key)) ?? {};
    } catch {
      this.marks = {};
    }
  }

  get(chatId) {
    return this.marks[chatId];
  }

  set(chatId, seq) {
    const current = this.marks[chatId];
    if (current !== undefined && current >= seq) return;
    this.marks[chatId] = seq;
    try {
      localStorage.setItem(this.key, JSON.stringify(this.marks));
    } catch {
      // Storage full or disabled: unread counts just start over next time.
    }
  }
}
