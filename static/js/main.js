// The demo page's entry point: the log-in form, or the signed-in App.

import { App } from "./app.js";
import { AuthForm } from "./auth.js";
import { byId } from "./dom.js";
import { clearSession, loadSession, saveSession } from "./session.js";

const NOTICE_KEY = "chatsio.notice"; // a message for the log-in form across a reload

/** Forget the session and start over at the log-in form. */
function signOut(message = "") {
  clearSession();
  if (message) sessionStorage.setItem(NOTICE_KEY, message);
  location.reload();
}

function boot() {
  let app = null;
  byId("logout").addEventListener("click", () => {
    app?.close();
    signOut();
  });
  const begin = (session) => {
    saveSession(session);
    auth.hide();
    app = new App(session, (message) => {
      app.close();
      signOut(`Your session has ended${message ? ` (${message})` : ""}. Please log in again.`);
    });
  };
  const auth = new AuthForm(begin);
  const session = loadSession();
  if (session) begin(session);
  else {
    auth.show(sessionStorage.getItem(NOTICE_KEY) ?? "");
    sessionStorage.removeItem(NOTICE_KEY);
  }
}

boot();
