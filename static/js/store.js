// What the page holds about each chat: its messages keyed by seq (so a message
// seen twice, live and in a catch-up, is kept once), how far that run of seq
// reaches, unread counts and sends still waiting for their ack.

export class ChatState {
  constructor(chat) {
    this.chat = chat;
    this.messages = new Map(); // seq -> Message
    this.top = null; // highest seq such that every seq from `bottom` up to it is held
    this.bottom = null; // lowest seq held
    this.loaded = false; // the first page of messages has arrived
    this.unread = 0;
    this.endedBy = null;
    this.typing = new Map(); // user -> timer
    this.pending = new Map(); // client_id -> {text, failed}
    this.draft = "";
  }

  get id() {
    return this.chat.id;
  }

  get active() {
    return this.chat.active;
  }

  get hasOlder() {
    return this.bottom !== null && this.bottom > 1;
  }

  get newest() {
    return this.top === null ? null : this.messages.get(this.top);
  }

  /** The last seq held with nothing missing below it, for `join {since}`. */
  get since() {
    return this.top;
  }

  /** Add messages; returns the ones not held before, in seq order. */
  add(messages) {
    const added = [];
    for (const message of messages) {
      if (message.id !== this.id || this.messages.has(message.seq)) continue;
      this.messages.set(message.seq, message);
      if (message.client_id) this.pending.delete(message.client_id);
      added.push(message);
    }
    if (!added.length) return added;
    added.sort((a, b) => a.seq - b.seq);
    const lowest = added[0].seq;
    if (this.bottom === null || lowest < this.bottom) this.bottom = lowest;
    if (this.top === null) this.top = this.bottom;
    // A page of older history reaches down; grow `top` over whatever is now contiguous.
    if (this.top < this.bottom) this.top = this.bottom;
    while (this.messages.has(this.top + 1)) this.top += 1;
    return added;
  }

  /** Whether a live message leaves a hole after what is held. */
  isGap(message) {
    return this.top !== null && message.seq > this.top + 1;
  }

  /** Messages in seq order. */
  ordered() {
    return [...this.messages.values()].sort((a, b) => a.seq - b.seq);
  }

  /** Who is typing now, by name. */
  typists() {
    return [...this.typing.keys()];
  }
}

export class Store {
  constructor(me, readMarks) {
    this.me = me;
    this.readMarks = readMarks;
    this.chats = new Map();
  }

  get(id) {
    return this.chats.get(id);
  }

  /** Add or refresh a chat; returns its state. */
  upsert(chat) {
    let state = this.chats.get(chat.id);
    if (state) state.chat = { ...state.chat, ...chat };
    else {
      state = new ChatState(chat);
      this.chats.set(chat.id, state);
    }
    return state;
  }

  /** Active chats first, then by latest activity. */
  sorted() {
    const activity = (state) => state.newest?.ts ?? state.chat.created_at;
    return [...this.chats.values()].sort((a, b) => {
      if (a.active !== b.active) return a.active ? -1 : 1;
      return activity(b).localeCompare(activity(a));
    });
  }

  /** Everyone the user has chatted with, for the member picker. */
  knownUsers() {
    const names = new Set();
    for (const state of this.chats.values()) {
      for (const name of state.chat.members) if (name !== this.me) names.add(name);
    }
    return [...names].sort();
  }

  /** The first page of a chat arrived: if this browser never saw it, it is all read. */
  adopt(state) {
    if (this.readMarks.get(state.id) === undefined) this.readMarks.set(state.id, state.top ?? 0);
  }

  /** Count what arrived that the user has not seen (not their own messages). */
  countUnread(state, added) {
    const mark = this.readMarks.get(state.id) ?? 0;
    state.unread += added.filter((m) => m.seq > mark && m.sender !== this.me).length;
  }

  markRead(state) {
    state.unread = 0;
    if (state.top !== null) this.readMarks.set(state.id, state.top);
  }

  /** A chat's display title: its title, or the other members' names. */
  titleOf(state) {
    if (state.chat.title) return state.chat.title;
    const others = state.chat.members.filter((name) => name !== this.me);
    return others.length ? others.join(", ") : this.me;
  }
}
