// What the page holds about each chat: its messages keyed by seq (so a message
// seen twice, live and in a catch-up, is kept once), how far that run of seq
// reaches, read marks and unread counts (the server's, kept up to date between
// its answers) and sends still waiting for their ack.

export class ChatState {
  constructor(chat) {
    this.chat = chat;
    this.messages = new Map(); // seq -> Message
    this.top = null; // highest seq such that every seq from `bottom` up to it is held
    this.bottom = null; // lowest seq held
    this.loaded = false; // the first page of messages has arrived
    this.readSeq = 0; // how far this user has read, on any device
    this.unread = 0;
    this.reads = {}; // the other members' marks: username -> seq
    this.invited = false; // arrived by an invitation and not opened yet
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
  constructor(me) {
    this.me = me;
    this.chats = new Map();
  }

  get(id) {
    return this.chats.get(id);
  }

  /** Add or refresh a chat (and its read state, when the server sent it); returns its state. */
  upsert(chat) {
    let state = this.chats.get(chat.id);
    if (state) state.chat = { ...state.chat, ...chat };
    else {
      state = new ChatState(chat);
      this.chats.set(chat.id, state);
    }
    for (const [user, seq] of Object.entries(chat.reads ?? {})) {
      if (user !== this.me) this.moveMark(state, user, seq);
    }
    // A mark of ours the server has not heard yet keeps the count made here.
    if (typeof chat.read_seq === "number" && chat.read_seq >= state.readSeq) {
      state.readSeq = chat.read_seq;
      if (typeof chat.unread === "number") state.unread = chat.unread;
    }
    return state;
  }

  /** The user left the chat for good. */
  remove(id) {
    this.chats.delete(id);
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

  /** A message arrived live: one more unread, unless it is ours or already read. */
  countUnread(state, message) {
    if (message.sender !== this.me && message.seq > state.readSeq) state.unread += 1;
  }

  /** This user's mark moved to `seq` (here or on another device); false if it did not move. */
  moveRead(state, seq) {
    if (seq <= state.readSeq) return false;
    const unreadHeld = (after, upTo = Infinity) =>
      [...state.messages.values()].filter((m) => m.sender !== this.me && m.seq > after && m.seq <= upTo).length;
    // Everything after the mark is held: count it. Otherwise take off what was read.
    if (state.bottom !== null && state.bottom <= seq + 1) state.unread = unreadHeld(seq);
    else state.unread = Math.max(0, state.unread - unreadHeld(state.readSeq, seq));
    state.readSeq = seq;
    return true;
  }

  /** Another member's mark moved (forward only); false if it did not move. */
  moveMark(state, user, seq) {
    if ((state.reads[user] ?? 0) >= seq) return false;
    state.reads[user] = seq;
    return true;
  }

  /** Another member left the chat. */
  dropMember(state, user) {
    state.chat = { ...state.chat, members: state.chat.members.filter((name) => name !== user) };
    delete state.reads[user];
  }

  /** A chat's display title: its title, or the other members' names. */
  titleOf(state) {
    if (state.chat.title) return state.chat.title;
    const others = state.chat.members.filter((name) => name !== this.me);
    return others.length ? others.join(", ") : this.me;
  }
}
