// Sending. A message shows at once as pending and is settled by its ack; its
// client_id makes a retry safe (the server stores it once). Files go the same
// way (one over the server's limit is not sent at all); the typing signal is
// throttled.

import { formatLimit } from "./dom.js";

const TYPING_EVERY_MS = 2000; // send `typing` at most this often

export class Outbox {
  /** `delivered(state, added)` shows the messages an ack says were stored. */
  constructor(connection, conversation, delivered) {
    this.connection = connection;
    this.conversation = conversation;
    this.delivered = delivered;
    this.lastTyping = 0;
    this.maxFileBytes = null; // the server's file limit, from `welcome`
  }

  send(state, text) {
    const clientId = newClientId();
    // The message ends "typing" on the other side; the next keystroke restarts it.
    this.lastTyping = 0;
    state.pending.set(clientId, { text, failed: false });
    this.attempt(state, clientId);
  }

  retry(state, clientId) {
    if (state.pending.has(clientId)) this.attempt(state, clientId);
  }

  async attempt(state, clientId) {
    const pending = state.pending.get(clientId);
    pending.failed = false;
    this.redraw(state);
    let ack;
    try {
      ack = await this.connection.send(state.id, pending.text, clientId);
    } catch {
      // No answer (timed out, or cut off). It may still have been stored: then
      // the catch-up after the reconnect brings it and clears this pending item.
      pending.failed = state.pending.has(clientId);
      this.redraw(state);
      return;
    }
    state.pending.delete(clientId);
    if (ack.ok) {
      this.conversation.error("");
      this.delivered(state, state.add([ack.message]));
    } else {
      this.conversation.error(`Not sent: ${ack.error.message}`);
      this.conversation.restoreDraft(state, pending.text);
    }
    this.redraw(state);
  }

  async sendFile(state, file) {
    if (!state.active) return;
    if (this.maxFileBytes !== null && file.size > this.maxFileBytes) {
      this.conversation.error(`${file.name} not sent: the file is over the ${formatLimit(this.maxFileBytes)} limit`);
      return;
    }
    const clientId = newClientId();
    state.pending.set(clientId, { file, failed: false });
    this.redraw(state);
    let ack;
    try {
      ack = await this.connection.sendFile(state.id, file, await file.arrayBuffer());
    } catch {
      ack = { ok: false, error: { message: "the server did not answer" } };
    }
    state.pending.delete(clientId);
    if (ack.ok) {
      this.conversation.error("");
      this.delivered(state, state.add([ack.message]));
    } else this.conversation.error(`${file.name} not sent: ${ack.error.message}`);
    this.redraw(state);
  }

  typing(state) {
    const now = Date.now();
    if (!state.active || now - this.lastTyping < TYPING_EVERY_MS) return;
    this.lastTyping = now;
    this.connection.typing(state.id);
  }

  redraw(state) {
    if (this.conversation.openId === state.id) this.conversation.pendingChanged();
  }
}

function newClientId() {
  // crypto.randomUUID needs a secure context (https or localhost); this does not.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
