// The list of the user's chats: title, last message, unread badge ("New" for
// an invitation not opened yet), ended mark, and a dot when someone in it is online.

import { byId, el, setText } from "./dom.js";

export class Sidebar {
  /** `select(id)` opens a chat. */
  constructor(store, presences, select) {
    this.store = store;
    this.presences = presences;
    this.select = select;
    this.list = byId("chat-list");
    this.empty = byId("chat-list-empty");
    this.items = new Map(); // chat id -> {item, button, title, preview, badge, ended}
    this.selected = null;
  }

  entry(state) {
    let entry = this.items.get(state.id);
    if (entry) return entry;
    const title = el("span", { class: "chat-title" });
    const preview = el("span", { class: "chat-preview" });
    const badge = el("span", { class: "badge", hidden: true });
    const ended = el("span", { class: "tag", hidden: true }, "Ended");
    const button = el(
      "button",
      { type: "button", class: "chat-item", "data-chat-id": state.id },
      el("span", { class: `avatar hue-${hue(state.id)}`, "aria-hidden": "true" }),
      el("span", { class: "chat-text" }, el("span", { class: "chat-line" }, title, ended), preview),
      badge,
    );
    button.addEventListener("click", () => this.select(state.id));
    entry = { item: el("li", {}, button), button, title, preview, badge, ended };
    this.items.set(state.id, entry);
    return entry;
  }

  /** Redraw every chat's entry and keep the list in order. */
  render() {
    const states = this.store.sorted();
    this.empty.hidden = states.length > 0;
    states.forEach((state, index) => {
      const entry = this.entry(state);
      this.fill(entry, state);
      // Move only what is out of place, so a focused button keeps its focus.
      if (this.list.children[index] !== entry.item) {
        this.list.insertBefore(entry.item, this.list.children[index] ?? null);
      }
    });
  }

  fill(entry, state) {
    const title = this.store.titleOf(state);
    setText(entry.title, title);
    setText(entry.button.firstElementChild, initials(title));
    setText(entry.preview, preview(state, this.store.me));
    entry.ended.hidden = state.active;
    const fresh = state.invited && !state.unread;
    entry.badge.hidden = !state.unread && !fresh;
    setText(entry.badge, fresh ? "New" : state.unread > 99 ? "99+" : String(state.unread));
    const unread = state.unread ? `, ${state.unread} unread` : fresh ? ", new" : "";
    entry.button.setAttribute("aria-label", `${title}${state.active ? "" : ", ended"}${unread}`);
    const online = state.active && state.chat.members.some((name) => name !== this.store.me && this.presences.online(name));
    entry.button.classList.toggle("partner-online", online);
    if (state.id === this.selected) entry.button.setAttribute("aria-current", "true");
    else entry.button.removeAttribute("aria-current");
    entry.item.classList.toggle("ended", !state.active);
  }

  /** The user left a chat: its entry goes. */
  forget(id) {
    this.items.get(id)?.item.remove();
    this.items.delete(id);
  }

  setSelected(id) {
    this.selected = id;
    this.render();
  }
}

/** One of six avatar colours, steady for a chat. */
function hue(id) {
  let sum = 0;
  for (const char of id) sum = (sum * 31 + char.charCodeAt(0)) % 9973;
  return sum % 6;
}

function initials(title) {
  const letters = title.match(/[\p{L}\p{N}]/gu) ?? ["#"];
  return letters[0].toUpperCase();
}

function preview(state, me) {
  const last = state.newest;
  if (!last) return state.active ? "No messages yet" : "Ended";
  const who = last.sender === null ? "" : last.sender === me ? "You: " : `${last.sender}: `;
  const what = last.kind === "file" ? `File: ${last.text}` : last.text;
  return `${who}${what}`.replace(/\s+/g, " ").slice(0, 120);
}
