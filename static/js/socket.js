// The Socket.IO half of docs/protocol.md: one connection multiplexing /control and
// /chat, its state (connecting / connected / reconnecting), and the re-join of
// every open chat with `since` after a reconnect, so nothing is missed.

import { io } from "/static/vendor/socket.io-client/socket.io.esm.min.js";

const ACK_TIMEOUT = 10_000;
const SINCE_MAX = 1000; // join answers at most this many messages after `since`

export class Connection {
  /**
   * `handlers`: welcome, invite, terminate, left, presence, notice (from
   * /control); message, typing (from /chat); read (from either: the room's
   * marks, and this user's own from their other devices); joined(id, chat,
   * messages), joinFailed(id, error), state(name), unauthorized(message).
   * `sinceOf(id)`: the last seq held for a chat (everything up to it is held),
   * or null when nothing is.
   */
  constructor(token, handlers, sinceOf) {
    this.handlers = handlers;
    this.sinceOf = sinceOf;
    this.rooms = new Set(); // chats this page keeps joined
    this.joining = new Set();
    this.everConnected = false;
    this.closed = false;
    this.state = null;
    // A restart takes a moment: the first retry comes after 0.75-2.25 s, later
    // ones back off to 5 s (jittered, so a restarted server is not stampeded).
    const options = { auth: { token }, reconnectionDelay: 1500, reconnectionDelayMax: 5000 };
    // Same origin: both namespaces share one Manager, so one Engine.IO connection.
    this.control = io("/control", options);
    this.chat = io("/chat", options);
    for (const socket of [this.control, this.chat]) this.watch(socket);
    this.closeOnClosePacket(this.control.io);
    this.control.on("welcome", (data) => handlers.welcome(data));
    this.control.on("invite", (data) => handlers.invite(data));
    this.control.on("terminate", (data) => handlers.terminate(data));
    this.control.on("left", (data) => handlers.left(data));
    this.control.on("presence", (data) => handlers.presence(data));
    this.control.on("notify", (data) => handlers.notice(data));
    this.control.on("read", (data) => handlers.read(data));
    this.chat.on("notify", (message) => handlers.message(message));
    this.chat.on("typing", (data) => handlers.typing(data));
    this.chat.on("read", (data) => handlers.read(data));
    this.chat.on("connect", () => {
      for (const id of this.rooms) this.join(id);
    });
    this.updateState();
  }

  watch(socket) {
    socket.on("connect", () => this.updateState());
    socket.on("disconnect", (reason) => {
      // A server that drops the namespace on purpose (say, while restarting)
      // is not retried by the client on its own.
      if (reason === "io server disconnect") socket.connect();
      this.updateState();
    });
    socket.on("connect_error", (error) => {
      if (error.data?.code === "unauthorized") {
        if (!this.closed) this.handlers.unauthorized(error.data.message);
        this.close();
        return;
      }
      // While socket.active the Manager keeps retrying with backoff (the server
      // is down or restarting); otherwise the server refused: ask again later.
      if (!socket.active) setTimeout(() => socket.connect(), 2000);
      this.updateState();
    });
  }

  /**
   * Engine.IO's `close` packet means "this transport is done". On a WebSocket
   * the client ignores it and python-engineio only closes its end a ping
   * timeout (45 s) later, so a server shutting down would look alive that
   * long: close the transport at once, and the Manager reconnects.
   */
  closeOnClosePacket(manager) {
    manager.on("open", () => {
      const engine = manager.engine;
      engine.on("packet", (packet) => {
        if (packet.type === "close") engine.close();
      });
    });
  }

  updateState() {
    const up = this.control.connected && this.chat.connected;
    if (up) this.everConnected = true;
    const state = up ? "connected" : this.everConnected ? "reconnecting" : "connecting";
    if (state === this.state) return;
    this.state = state;
    this.handlers.state(state);
  }

  /** Keep a chat joined: now if connected, and again after every reconnect. */
  open(id) {
    if (this.rooms.has(id)) return;
    this.rooms.add(id);
    if (this.chat.connected) this.join(id);
  }

  /** Stop re-joining a chat (it ended; the server already emptied its room). */
  forget(id) {
    this.rooms.delete(id);
  }

  /** Catch up on a chat after seeing a gap in its seq. */
  catchUp(id) {
    if (this.rooms.has(id) && this.chat.connected) this.join(id);
  }

  /** Join (or catch up on) a chat from the last seq held. */
  async join(id) {
    if (this.joining.has(id)) return;
    this.joining.add(id);
    let ack;
    try {
      const since = this.sinceOf(id);
      ack = await this.call(this.chat, "join", since === null ? { id } : { id, since });
    } catch {
      // Timed out or disconnected: the next "connect" joins again.
      return;
    } finally {
      this.joining.delete(id);
    }
    if (!ack.ok) {
      this.rooms.delete(id);
      this.handlers.joinFailed(id, ack.error);
      return;
    }
    this.handlers.joined(id, ack.chat, ack.messages);
    if (ack.messages.length >= SINCE_MAX) this.join(id); // more to catch up on
  }

  /** Emit with an acknowledgement; rejects on timeout or disconnect. */
  call(socket, event, payload) {
    return socket.timeout(ACK_TIMEOUT).emitWithAck(event, payload);
  }

  start(members, title) {
    return this.call(this.control, "start", title ? { members, title } : { members });
  }

  terminate(id) {
    return this.call(this.control, "terminate", { id });
  }

  /** Leave a chat for good (the /control `leave`, not the room's). */
  leave(id) {
    return this.call(this.control, "leave", { id });
  }

  /** Move this user's read mark in a chat to `seq`. */
  read(id, seq) {
    return this.call(this.chat, "read", { id, seq });
  }

  send(id, text, clientId) {
    return this.call(this.chat, "notify", { id, kind: "message", text, client_id: clientId });
  }

  sendFile(id, file, data) {
    const type = file.type || "application/octet-stream";
    return this.call(this.chat, "file", { id, name: file.name, type, data });
  }

  /** Tell the room the user is typing; best effort, no ack awaited. */
  typing(id) {
    if (this.chat.connected) this.chat.volatile.emit("typing", { id }, () => {});
  }

  close() {
    this.closed = true;
    this.control.disconnect();
    this.chat.disconnect();
  }
}
