// The signed-in page: what the server says (welcome, invitations, messages,
// typing, read marks, presence, endings, leavings, notices) and what the user
// does, between the store and the views.

import * as api from "./api.js";
import { Banners } from "./banners.js";
import { ConfirmDialog } from "./confirm.js";
import { Conversation } from "./conversation.js";
import { byId, setText } from "./dom.js";
import { NewChatDialog } from "./newchat.js";
import { Outbox } from "./outbox.js";
import { Presences } from "./presence.js";
import { ReadSender } from "./reads.js";
import { rememberedOpen, rememberOpen } from "./session.js";
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
    this.store = new Store(this.me);
    this.presences = new Presences();
    this.banners = new Banners();
    this.sidebar = new Sidebar(this.store, this.presences, (id) => this.open(id, { focus: true }));
    this.endDialog = new ConfirmDialog("end-chat-dialog", () => this.end());
    this.leaveDialog = new ConfirmDialog("leave-chat-dialog", () => this.leave());
    this.conversation = new Conversation(this.me, this.presences, {
      send: (text) => this.outbox.send(this.openState(), text),
      sendFile: (file) => this.outbox.sendFile(this.openState(), file),
      typing: () => this.outbox.typing(this.openState()),
      loadOlder: () => this.loadOlder(),
      end: () => this.endDialog.open(),
      leave: () => this.leaveDialog.open(),
      back: () => this.back(),
      download: (file, button) => this.download(file, button),
      preview: (file) => api.previewUrl(file),
      retry: (clientId) => this.outbox.retry(this.openState(), clientId),
      scrolled: () => this.markVisible() && this.render(),
      titleOf: (state) => this.store.titleOf(state),
    });
    this.newChat = new NewChatDialog((members, title) => this.start(members, title));
    this.reads = new ReadSender((id, seq) => this.sendRead(id, seq));
    this.view = byId("app-view");
    this.loadingOlder = false;
    this.bindChrome();
    this.connection = new Connection(
      session.token,
      {
        welcome: (data) => this.welcome(data),
        invite: (data) => this.invite(data),
        terminate: (data) => this.ended(data.id, data.by),
        left: (data) => this.leftBy(data),
        presence: (presence) => this.presenceOf(presence),
        notice: (notice) => this.notice(notice),
        message: (message) => this.live(message),
        typing: (data) => this.typingFrom(data),
        read: (data) => this.readBy(data),
        joined: (id, chat, messages) => this.joined(chat, messages),
        joinFailed: (id, error) => this.joinFailed(id, error),
        state: (name) => this.connectionState(name),
        unauthorized: (message) => this.expired(message),
      },
      (id) => this.store.get(id)?.since ?? null,
    );
    this.outbox = new Outbox(this.connection, this.conversation, (state, added) =>
      this.deliver(state, added),
    );
    this.restoring = rememberedOpen(); // the chat open before a reload, until it is back
    this.loadEndedChats();
  }

  bindChrome() {
    setText(byId("me-name"), this.me);
    byId("me").hidden = false;
    this.view.hidden = false;
    byId("new-chat").addEventListener("click", () => this.newChat.open(this.store.knownUsers()));
    document.addEventListener("visibilitychange", () => this.seen());
  }

  close() {
    this.connection.close();
  }

  // --- what the server says -------------------------------------------------

  welcome({ chats, presence, max_file_bytes: maxFileBytes }) {
    this.outbox.maxFileBytes = maxFileBytes ?? null;
    this.presences.update(presence);
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
    this.restoreOpen();
  }

  /** A new chat shows in the list, marked new; the open chat and the focus stay where they are. */
  invite({ chat, presence }) {
    this.presences.update(presence);
    this.store.upsert(chat).invited = true;
    this.connection.open(chat.id);
    this.render();
  }

  /** The server's unread count comes with the chat; the messages it answered are in it. */
  joined(chat, messages) {
    const state = this.store.upsert(chat);
    const added = state.add(messages);
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
    const added = state.add([message]);
    for (const one of added) this.store.countUnread(state, one);
    this.deliver(state, added);
  }

  /** A read mark moved: another member's ("Seen by"), or this user's on another device. */
  readBy({ id, user, seq }) {
    const state = this.store.get(id);
    if (!state) return;
    const moved = user === this.me ? this.store.moveRead(state, seq) : this.store.moveMark(state, user, seq);
    if (moved) this.render();
  }

  presenceOf(presence) {
    this.presences.update([presence]);
    this.render();
  }

  /** `left`: this user left (on this device or another), or another member did. */
  leftBy({ id, user }) {
    const state = this.store.get(id);
    if (!state) return;
    if (user !== this.me) {
      this.store.dropMember(state, user);
      this.render();
      return;
    }
    if (this.conversation.openId === id) this.back();
    this.connection.forget(id);
    this.store.remove(id);
    this.sidebar.forget(id);
    this.render();
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

  /** Show newly held messages; those that come into view are read. */
  deliver(state, added) {
    if (!added.length) return;
    if (this.conversation.openId === state.id) this.conversation.insert(added);
    this.seen();
  }

  // --- what the user does ---------------------------------------------------

  open(id, { focus = false } = {}) {
    const state = this.store.get(id);
    if (!state) return;
    this.restoring = null;
    state.invited = false;
    rememberOpen(id);
    this.view.dataset.pane = "chat"; // first: on a phone the pane must be shown to scroll it
    this.conversation.show(state);
    this.sidebar.setSelected(id);
    if (!state.active && !state.loaded) this.catchUpByRest(state);
    else if (this.conversation.olderInView()) this.loadOlder();
    this.seen();
    if (focus) this.conversation.focusInput();
  }

  back() {
    rememberOpen(null);
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
    this.presences.update(ack.presence);
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

  /** End the open chat for everyone; resolves to an error message, or null. */
  async end() {
    const state = this.openState();
    if (!state) return null;
    const ack = await answerOf(this.connection.terminate(state.id));
    if (!ack.ok && ack.error.code !== "terminated") return ack.error.message;
    this.ended(state.id, ack.ok ? this.me : null); // `terminate` from /control may be later
    return null;
  }

  /** Leave the open chat for good; resolves to an error message, or null. */
  async leave() {
    const state = this.openState();
    if (!state) return null;
    const ack = await answerOf(this.connection.leave(state.id));
    if (!ack.ok) return ack.error.message;
    this.leftBy({ id: state.id, user: this.me }); // `left` from /control may be later
    return null;
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

  /** Redraw, after marking what the open chat shows as read. */
  seen() {
    this.markVisible();
    this.render();
  }

  /** The open chat's messages on screen are read: move the mark, tell the server (coalesced). */
  markVisible() {
    const state = this.openState();
    if (!state || !this.viewing(state)) return false;
    const seq = this.conversation.lastVisibleSeq();
    if (seq === null || !this.store.moveRead(state, seq)) return false;
    this.reads.mark(state.id, seq);
    return true;
  }

  async sendRead(id, seq) {
    let ack;
    try {
      ack = await this.connection.read(id, seq);
    } catch {
      return; // not answered: the next message seen sends a mark again
    }
    const state = this.store.get(id);
    if (ack.ok && state && this.store.moveRead(state, ack.read_seq)) this.render();
  }

  /** After a reload: open the chat that was open, once it is known. */
  restoreOpen() {
    if (this.restoring && !this.conversation.openId && this.store.get(this.restoring)) this.open(this.restoring);
  }

  connectionState(name) {
    byId("conn").dataset.state = name;
    setText(byId("conn-text"), STATES[name] ?? name);
    if (name === "reconnecting") this.banners.dropped();
    if (name === "connected") this.banners.reconnected();
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
      this.restoreOpen();
    } catch (error) {
      if (error.code === "unauthorized") this.expired(error.message);
    }
  }
}

/** An ack, or an error ack when the server did not answer. */
async function answerOf(call) {
  try {
    return await call;
  } catch {
    return { ok: false, error: { code: "timeout", message: "The server did not answer. Try again." } };
  }
}
