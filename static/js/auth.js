// The sign-up / log-in form.

import { ApiError, logIn, register } from "./api.js";
import { byId, setText } from "./dom.js";

const MESSAGES = {
  conflict: "That username is taken. Log in instead, or pick another.",
  unauthorized: "Wrong username or password.",
  forbidden: "Sign-up is closed on this server.",
  network: "The server cannot be reached. Try again in a moment.",
};

export class AuthForm {
  /** `done(session)` gets {token, username, expires_at}. */
  constructor(done) {
    this.done = done;
    this.view = byId("auth-view");
    this.form = byId("auth-form");
    this.error = byId("auth-error");
    this.username = byId("auth-username");
    this.password = byId("auth-password");
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit(event.submitter?.value ?? "login");
    });
  }

  show(message = "") {
    this.view.hidden = false;
    setText(this.error, message);
    this.password.value = "";
    (this.username.value ? this.password : this.username).focus();
  }

  hide() {
    this.view.hidden = true;
  }

  async submit(action) {
    if (!this.form.reportValidity()) return;
    const username = this.username.value.trim();
    const password = this.password.value;
    setText(this.error, "");
    this.form.classList.add("busy");
    try {
      if (action === "signup") await register(username, password);
      this.done(await logIn(username, password));
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      setText(this.error, MESSAGES[error.code] ?? fieldsText(error));
    } finally {
      this.form.classList.remove("busy");
    }
  }
}

function fieldsText(error) {
  if (!error.fields) return error.message;
  return Object.entries(error.fields)
    .map(([field, reasons]) => `${field}: ${reasons.join(", ")}`)
    .join("; ");
}
