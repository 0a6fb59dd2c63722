// The signed-in page: what the server says (welcome, invitations, messages,
// typing, endings, notices) and what the user does, between the store and the
// views.

import * as api from "./api.js";
import { Banners } from "./banners.js";
import { Conversation } from "./conversation.js";
import { byId, setText } from "./dom.js";
import { NewChatDialog } from "./newchat.js";
import { Outbox } from "./outbox.js";
import { ReadMarks } from "./session.js";
import { Sidebar } from "./sidebar.js";
import { Connection } from "./socket.js";
import { Store } from "./store.js";

const TYPING_SHOWN_MS = 4000; // how long "x is typing…" stays after the last signal
const STATES = { connecting: "Connecting…", connected: "Connected", reconnecting: "Reconnecting…" };

export class App {
  /** `expired(message)` is called when the server no longer takes the token. */
  constructor(session, expired) {
    this.me = session.username;
    this.expired = expired;
    api.useToken(session.token);
    this.store = new Store(this.me, new ReadMarks(this.me));
    this.banners = new Banners();
    this.sidebar = new Sidebar(this.store, (id) => this.open(id, { focus: true }));
    this.conversation = new Conversation(this.me, {
      send: (text) => this.outbox.send(this.openState(), text),
      sendFile: (file) => this.outbox.sendFile(this.openState(), file),
      typing: () => this.outbox.typing(this.openState()),
      loadOlder: () => this.loadOlder(),
      end: () => this.confirmEnd(),
      back: () => this.back(),
      download: (file, button) => this.download(file, button),
      retry: (clientId) => this.outbox.retry(this.openState(), clientId),
      titleOf: (state) => this.store.titleOf(state),
    });
    this.newChat = new NewChatDialog((members, title) => this.start(members, title));
    this.view = byId("app-view");
    this.loadingOlder = false;
    this.bindChrome();
    this.connection = new Connection(
      session.token,
      {
        welcome: (data) => this.welcome(data),
        invite: (data) => this.invite(data),
        terminate: (data) => this.ended(data.id, data.by),
        notice: (notice) => this.notice(notice),
        message: (message) => this.live(message),
        typing: (data) => this.typingFrom(data),
        joined: (id, chat, messages) => this.joined(chat, messages),
        joinFailed: (id, error) => this.joinFailed(id, error),
        state: (name) => showConnection(name),
        unauthorized: (message) => this.expired(message),
      },
      (id) => this.store.get(id)?.since ?? null,
    );
    this.outbox = new Outbox(this.connection, this.conversation, (state, added) =>
      this.deliver(state, added),
    );
    this.loadEndedChats();
  }

  bindChrome() {
    setText(byId("me-name"), this.me);
    byId("me").hidden = false;
    this.view.hidden = false;
    byId("new-chat").addEventListener("click", () => this.newChat.open(this.store.knownUsers()));
    const endDialog = byId("end-chat-dialog");
    byId("end-chat-cancel").addEventListener("click", () => endDialog.close());
    byId("end-chat-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.end(endDialog);
    });
    document.addEventListener("visibilitychange", () => this.seen());
  }

  close() {
    this.connection.close();
  }

  // --- what the server says -------------------------------------------------

  welcome({ chats }) {
    const active = new Set(chats.map((chat) => chat.id));
    for (const chat of chats) {
      this.store.upsert(chat);
      this.connection.open(chat.id);
    }
    // Chats held as active that the server no longer lists ended while we were away.
    for (const state of this.store.chats.values()) {
      if (state.active && !active.has(state.id)) this.ended(state.id, null);
    }
    this.render();
  }

  invite({ chat }) {
    this.store.upsert(chat);
    this.connection.open(chat.id);
    this.open(chat.id); // an invitation opens the chat on its own
  }

  joined(chat, messages) {
    const state = this.store.upsert(chat);
    const added = state.add(messages);
    if (!state.loaded) this.store.adopt(state);
    state.loaded = true;
    this.deliver(state, added);
  }

  joinFailed(id, error) {
    if (error.code === "terminated") this.ended(id, null);
    else if (this.conversation.openId === id) this.conversation.error(error.message);
  }

  live(message) {
    const state = this.store.get(message.id);
    if (!state) return;
    if (state.isGap(message)) this.connection.catchUp(state.id); // fetch what was skipped
    if (message.sender) this.stopTyping(state, message.sender);
    this.deliver(state, state.add([message]));
  }

  ended(id, by) {
    const state = this.store.get(id);
    if (!state) return;
    const wasActive = state.active;
    state.chat = { ...state.chat, active: false };
    if (by) state.endedBy = by;
    this.connection.forget(id);
    for (const user of state.typists()) this.stopTyping(state, user);
    this.render();
    if (wasActive) this.catchUpByRest(state); // the closing notice, had the room missed it
  }

  notice(notice) {
    // A notice posted into a chat also arrives there as a message; the banner says where.
    const state = notice.id ? this.store.get(notice.id) : null;
    this.banners.show(notice, state ? this.store.titleOf(state) : null);
  }

  typingFrom({ id, user }) {
    const state = this.store.get(id);
    if (!state || user === this.me) return;
    clearTimeout(state.typing.get(user));
    state.typing.set(
      user,
      setTimeout(() => this.stopTyping(state, user), TYPING_SHOWN_MS),
    );
    if (this.conversation.openId === id) this.conversation.renderTyping();
  }

  stopTyping(state, user) {
    if (!state.typing.has(user)) return;
    clearTimeout(state.typing.get(user));
    state.typing.delete(user);
    if (this.conversation.openId === state.id) this.conversation.renderTyping();
  }

  /** Show newly held messages, count them unread if the chat is not in view. */
  deliver(state, added) {
    if (!added.length) return;
    if (this.viewing(state)) this.store.markRead(state);
    else this.store.countUnread(state, added);
    if (this.conversation.openId === state.id) this.conversation.insert(added);
    this.render();
  }

  // --- what the user does ---------------------------------------------------

  open(id, { focus = false } = {}) {
    const state = this.store.get(id);
    if (!state) return;
    this.view.dataset.pane = "chat"; // first: on a phone the pane must be shown to scroll it
    this.conversation.show(state);
    this.sidebar.setSelected(id);
    if (!state.active && !state.loaded) this.catchUpByRest(state);
    else if (this.conversation.olderInView()) this.loadOlder();
    this.seen();
    if (focus) this.conversation.focusInput();
  }

  back() {
    this.conversation.hide();
    this.view.dataset.pane = "list";
    this.sidebar.setSelected(null);
  }

  async start(members, title) {
    let ack;
    try {
      ack = await this.connection.start(members, title);
    } catch {
      return "The server did not answer. Try again.";
    }
    if (!ack.ok) return ack.error.fields?.members?.join("; ") ?? ack.error.message;
    this.store.upsert(ack.chat);
    this.connection.open(ack.chat.id);
    this.open(ack.chat.id, { focus: true });
    return null;
  }

  async loadOlder() {
    const state = this.openState();
    if (!state?.hasOlder || this.loadingOlder) return;
    this.loadingOlder = true;
    try {
      const older = await api.messagesBefore(state.id, state.bottom, 50);
      if (this.openState() === state) this.conversation.insert(state.add(older));
    } catch (error) {
      this.conversation.error(`Could not load older messages: ${error.message}`);
      return;
    } finally {
      this.loadingOlder = false;
    }
    if (this.conversation.olderInView()) this.loadOlder();
  }

  confirmEnd() {
    setText(byId("end-chat-error"), "");
    byId("end-chat-dialog").showModal();
  }

  async end(dialog) {
    const state = this.openState();
    if (!state) return dialog.close();
    let ack;
    try {
      ack = await this.connection.terminate(state.id);
    } catch {
      ack = { ok: false, error: { message: "The server did not answer. Try again." } };
    }
    if (ack.ok || ack.error.code === "terminated") {
      dialog.close();
      this.ended(state.id, ack.ok ? this.me : null); // `terminate` from /control may be later
    } else setText(byId("end-chat-error"), ack.error.message);
  }

  async download(file, button) {
    button.disabled = true;
    try {
      await api.downloadFile(file);
      this.conversation.error("");
    } catch (error) {
      this.conversation.error(`Could not download ${file.name}: ${error.message}`);
    } finally {
      button.disabled = false;
    }
  }

  // --- helpers --------------------------------------------------------------

  openState() {
    return this.store.get(this.conversation.openId);
  }

  viewing(state) {
    return this.conversation.openId === state.id && document.visibilityState === "visible";
  }

  /** The open chat is in view: clear its unread count. */
  seen() {
    const state = this.openState();
    if (state && this.viewing(state)) this.store.markRead(state);
    this.render();
  }

  render() {
    this.sidebar.render();
    this.conversation.refresh();
    const unread = [...this.store.chats.values()].reduce((sum, s) => sum + s.unread, 0);
    document.title = unread ? `(${unread}) chatsio` : "chatsio";
  }

  /** Messages the socket cannot give: an ended chat's, through REST. */
  async catchUpByRest(state) {
    try {
      const messages =
        state.top === null
          ? await api.messagesBefore(state.id, null, 50)
          : await api.messagesAfter(state.id, state.top);
      const added = state.add(messages);
      if (!state.loaded) this.store.adopt(state);
      state.loaded = true;
      this.deliver(state, added);
    } catch (error) {
      if (error.code === "unauthorized") this.expired(error.message);
    }
  }

  async loadEndedChats() {
    try {
      for (const chat of await api.listChats()) {
        if (chat.active) continue; // welcome lists those, and they get joined
        if (this.store.get(chat.id)?.active) this.ended(chat.id, null);
        else this.store.upsert(chat);
      }
      this.render();
    } catch (error) {
      if (error.code === "unauthorized") this.expired(error.message);
    }
  }
}

function showConnection(name) {
  byId("conn").dataset.state = name;
  setText(byId("conn-text"), STATES[name] ?? name);
}
