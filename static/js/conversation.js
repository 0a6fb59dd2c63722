// The open chat: its members and their presence, its messages in seq order
// with "Seen by", pending sends, typing, the composer (Enter sends), files by
// button or drag-and-drop, older history as the user scrolls up, and the
// ended state.

import { byId, el, nameList, setText } from "./dom.js";
import { messageItem, pendingItem, regroup, seenLine } from "./messages.js";

const NEAR_BOTTOM = 80; // px: closer than this to the end counts as "at the bottom"

export class Conversation {
  /**
   * `actions`: send(text), sendFile(file), typing(), loadOlder(), end(), leave(),
   * back(), download(file, button), preview(file), retry(clientId), scrolled(),
   * titleOf(state). `presences`: a Presences.
   */
  constructor(me, presences, actions) {
    this.me = me;
    this.presences = presences;
    this.actions = actions;
    this.state = null;
    this.loadingOlder = false;
    this.root = byId("conv");
    this.empty = byId("conv-empty");
    this.title = byId("conv-title");
    this.members = byId("conv-members");
    this.scroller = byId("scroller");
    this.list = byId("messages");
    this.older = byId("load-older");
    this.typingLine = byId("typing");
    this.endedNote = byId("ended-note");
    this.errorLine = byId("conv-error");
    this.composer = byId("composer");
    this.input = byId("message-input");
    this.fileInput = byId("file-input");
    this.dropZone = byId("drop-zone");
    this.endButton = byId("end-chat");
    this.leaveButton = byId("leave-chat");
    this.files = { download: actions.download, preview: actions.preview };
    this.bind();
  }

  bind() {
    this.composer.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.submit();
      }
    });
    this.input.addEventListener("input", () => {
      if (this.state) this.state.draft = this.input.value;
      this.fitInput();
      if (this.input.value.trim()) this.actions.typing();
    });
    byId("attach").addEventListener("click", () => this.fileInput.click());
    this.fileInput.addEventListener("change", () => {
      for (const file of this.fileInput.files) this.actions.sendFile(file);
      this.fileInput.value = "";
    });
    this.older.addEventListener("click", () => this.actions.loadOlder());
    this.endButton.addEventListener("click", () => this.actions.end());
    this.leaveButton.addEventListener("click", () => this.actions.leave());
    this.scroller.addEventListener("scroll", () => this.actions.scrolled(), { passive: true });
    byId("back").addEventListener("click", () => this.actions.back());
    // Scrolling up to the "Load older" button loads the page before.
    new IntersectionObserver(
      (entries) => {
        if (entries.some((entry) => entry.isIntersecting) && !this.older.hidden) this.actions.loadOlder();
      },
      { root: this.scroller, rootMargin: "200px 0px 0px 0px" },
    ).observe(this.older);
    this.bindDrop();
  }

  bindDrop() {
    let depth = 0;
    const canDrop = (event) => this.state?.active && event.dataTransfer?.types.includes("Files");
    this.root.addEventListener("dragenter", (event) => {
      if (!canDrop(event)) return;
      event.preventDefault();
      depth += 1;
      this.dropZone.hidden = false;
    });
    this.root.addEventListener("dragover", (event) => {
      if (!canDrop(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
    });
    this.root.addEventListener("dragleave", () => {
      depth = Math.max(0, depth - 1);
      if (!depth) this.dropZone.hidden = true;
    });
    this.root.addEventListener("drop", (event) => {
      depth = 0;
      this.dropZone.hidden = true;
      if (!canDrop(event)) return;
      event.preventDefault();
      for (const file of event.dataTransfer.files) this.actions.sendFile(file);
    });
  }

  submit() {
    const text = this.input.value;
    if (!text.trim() || !this.state?.active) return;
    this.input.value = "";
    this.state.draft = "";
    this.fitInput();
    this.actions.send(text);
  }

  fitInput() {
    // Grow with the text up to the CSS max-height (rows, not an inline style).
    const lines = this.input.value.split("\n").length;
    this.input.rows = Math.min(Math.max(lines, 1), 6);
  }

  get openId() {
    return this.state?.id ?? null;
  }

  /** Show a chat, all of it redrawn. */
  show(state) {
    this.state = state;
    this.error("");
    this.empty.hidden = true;
    this.root.hidden = false;
    this.list.replaceChildren();
    for (const message of state.ordered()) this.list.append(this.item(message));
    for (const item of this.list.children) regroup(item);
    this.renderPending();
    this.input.value = state.draft;
    this.fitInput();
    this.refresh();
    this.scrollToBottom();
  }

  hide() {
    this.state = null;
    this.root.hidden = true;
    this.empty.hidden = false;
  }

  /** Header, ended state, typing line and "load older", from the state. */
  refresh() {
    const state = this.state;
    if (!state) return;
    setText(this.title, this.actions.titleOf(state));
    this.renderMembers();
    const ended = !state.active;
    this.endButton.hidden = ended; // an ended chat can still be left: it drops off the list
    this.endedNote.hidden = !ended;
    setText(this.endedNote, ended ? `This chat has ended${state.endedBy ? ` (ended by ${state.endedBy})` : ""}. Its history stays readable.` : "");
    this.composer.hidden = ended;
    this.root.classList.toggle("ended", ended);
    this.older.hidden = !state.hasOlder;
    this.renderTyping();
    this.renderSeen();
  }

  /** "you, bob (online) and carol (last seen 14:05)", each other member with a presence dot. */
  renderMembers() {
    const others = this.state.chat.members.filter((name) => name !== this.me);
    const parts = [el("span", {}, "you"), ...others.map((name) => this.member(name))];
    // Strings become text nodes in replaceChildren.
    this.members.replaceChildren(
      ...parts.flatMap((part, index) => (index ? [index === parts.length - 1 ? " and " : ", ", part] : [part])),
    );
  }

  member(name) {
    const online = this.presences.online(name);
    const status = this.presences.describe(name);
    return el(
      "span",
      { class: "member", "data-user": name, "data-online": String(online) },
      el("span", { class: `presence-dot${online ? " online" : ""}`, "aria-hidden": "true" }),
      name,
      status ? el("span", { class: "last-seen" }, ` (${status})`) : null,
    );
  }

  /** "Seen by …" under the newest message each other member has read (not their own). */
  renderSeen() {
    for (const node of this.list.querySelectorAll(".seen")) node.remove();
    const readers = new Map(); // <li> -> names
    const items = [...this.list.querySelectorAll("li[data-seq]")];
    for (const [name, mark] of Object.entries(this.state.reads)) {
      if (name === this.me || !this.state.chat.members.includes(name)) continue;
      const item = items.findLast((node) => Number(node.dataset.seq) <= mark && node.dataset.sender !== name);
      if (item) readers.set(item, [...(readers.get(item) ?? []), name]);
    }
    for (const [item, names] of readers) item.append(seenLine(names.sort()));
  }

  /** The seq of the last message on screen in the scroller, or null. */
  lastVisibleSeq() {
    if (this.root.hidden) return null;
    const bottom = this.scroller.getBoundingClientRect().bottom;
    const items = this.list.querySelectorAll("li[data-seq]");
    for (let index = items.length - 1; index >= 0; index -= 1) {
      const box = items[index].getBoundingClientRect();
      if (box.height && box.top < bottom) return Number(items[index].dataset.seq);
    }
    return null;
  }

  renderTyping() {
    const names = this.state ? this.state.typists() : [];
    const text = !names.length ? "" : `${nameList(names)} ${names.length === 1 ? "is" : "are"} typing…`;
    setText(this.typingLine, text);
  }

  item(message) {
    return messageItem(message, this.me, this.files);
  }

  /** Put newly added messages in place by seq, keeping the view steady. */
  insert(messages) {
    if (!messages.length) return;
    const atBottom = this.isNearBottom();
    const anchor = this.scroller.scrollHeight - this.scroller.scrollTop;
    const first = this.list.firstElementChild;
    const olderOnly = first?.dataset.seq && messages.at(-1).seq < Number(first.dataset.seq);
    for (const message of messages) {
      const node = this.item(message);
      this.list.insertBefore(node, this.nodeAfter(message.seq));
      regroup(node);
      regroup(node.nextElementSibling);
    }
    this.renderPending();
    this.refresh();
    if (olderOnly) this.scroller.scrollTop = this.scroller.scrollHeight - anchor;
    else if (atBottom || messages.some((m) => m.sender === this.me)) this.scrollToBottom();
  }

  /** The first shown item with a larger seq (or the first pending one). */
  nodeAfter(seq) {
    for (const node of this.list.children) {
      if (!node.dataset.seq || Number(node.dataset.seq) > seq) return node;
    }
    return null;
  }

  renderPending() {
    for (const node of this.list.querySelectorAll("[data-client-id]")) node.remove();
    if (!this.state) return;
    for (const [clientId, pending] of this.state.pending) {
      this.list.append(pendingItem(clientId, pending, this.actions.retry));
    }
  }

  /** A send was queued or failed: redraw the pending ones and follow them. */
  pendingChanged() {
    this.renderPending();
    this.scrollToBottom();
  }

  isNearBottom() {
    const { scrollHeight, scrollTop, clientHeight } = this.scroller;
    return scrollHeight - scrollTop - clientHeight < NEAR_BOTTOM;
  }

  scrollToBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  /** Whether "Load older messages" is on screen (or nearly). */
  olderInView() {
    if (this.older.hidden || this.root.hidden) return false;
    const button = this.older.getBoundingClientRect();
    const view = this.scroller.getBoundingClientRect();
    return button.bottom >= view.top - 200 && button.top <= view.bottom;
  }

  /** Focus the composer, except on phones, where that would pop up the keyboard. */
  focusInput() {
    if (this.state?.active && !matchMedia("(max-width: 720px)").matches) this.input.focus();
  }

  /** Put back the text of a message the server refused, unless something new is typed. */
  restoreDraft(state, text) {
    if (state.draft) return;
    state.draft = text;
    if (this.state === state) {
      this.input.value = text;
      this.fitInput();
    }
  }

  /** Tell the user a send failed (cleared by the next success). */
  error(text) {
    setText(this.errorLine, text);
    this.errorLine.hidden = !text;
  }
}
