// The "New chat" dialog: pick members by name (suggesting people from earlier
// chats), an optional title.

import { byId, el, setText } from "./dom.js";

const NAME = /^[A-Za-z0-9_.-]{1,32}$/;

export class NewChatDialog {
  /** `start(members, title)` resolves to an error message, or null on success. */
  constructor(start) {
    this.start = start;
    this.members = [];
    this.dialog = byId("new-chat-dialog");
    this.form = byId("new-chat-form");
    this.chips = byId("member-chips");
    this.input = byId("member-input");
    this.known = byId("known-users");
    this.title = byId("chat-title");
    this.error = byId("new-chat-error");
    this.input.addEventListener("keydown", (event) => {
      if ((event.key === "Enter" || event.key === ",") && this.input.value.trim()) {
        event.preventDefault();
        this.addTyped();
      } else if (event.key === "Backspace" && !this.input.value && this.members.length) {
        this.remove(this.members.at(-1));
      }
    });
    this.input.addEventListener("change", () => {
      // Picking a suggestion from the list adds it at once.
      if (this.known.querySelector(`option[value="${CSS.escape(this.input.value)}"]`)) this.addTyped();
    });
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    byId("new-chat-cancel").addEventListener("click", () => this.dialog.close());
  }

  open(knownUsers) {
    this.members = [];
    this.renderChips();
    this.input.value = "";
    this.title.value = "";
    setText(this.error, "");
    this.known.replaceChildren(...knownUsers.map((name) => el("option", { value: name })));
    this.dialog.showModal();
    this.input.focus();
  }

  addTyped() {
    for (const raw of this.input.value.split(/[\s,]+/)) {
      const name = raw.trim();
      if (!name) continue;
      if (!NAME.test(name)) {
        setText(this.error, `“${name}” is not a username (1–32 of A–Z a–z 0–9 _ . -).`);
        return;
      }
      if (!this.members.includes(name)) this.members.push(name);
    }
    this.input.value = "";
    setText(this.error, "");
    this.renderChips();
  }

  remove(name) {
    this.members = this.members.filter((member) => member !== name);
    this.renderChips();
    this.input.focus();
  }

  renderChips() {
    this.chips.replaceChildren(
      ...this.members.map((name) => {
        const remove = el("button", { type: "button", class: "chip-remove", "aria-label": `Remove ${name}` }, "×");
        remove.addEventListener("click", () => this.remove(name));
        return el("li", { class: "chip" }, el("span", {}, name), remove);
      }),
    );
  }

  async submit() {
    if (this.input.value.trim()) this.addTyped();
    if (!this.members.length) {
      setText(this.error, "Add at least one person.");
      this.input.focus();
      return;
    }
    const problem = await this.start(this.members, this.title.value.trim() || null);
    if (problem) setText(this.error, problem);
    else this.dialog.close();
  }
}
