// Sending read marks. Marks for a chat are coalesced: at most one `read` per
// chat every half second, carrying the highest seq seen meanwhile, so catching
// up on 300 messages costs one event, not 300.

const EVERY_MS = 500;

export class ReadSender {
  /** `send(id, seq)` emits one `read`. */
  constructor(send) {
    this.send = send;
    this.wanted = new Map(); // chat id -> highest seq not sent yet
    this.timer = null;
  }

  mark(id, seq) {
    if ((this.wanted.get(id) ?? -1) >= seq) return;
    this.wanted.set(id, seq);
    this.timer ??= setTimeout(() => this.flush(), EVERY_MS);
  }

  flush() {
    this.timer = null;
    const marks = [...this.wanted];
    this.wanted.clear();
    for (const [id, seq] of marks) this.send(id, seq);
  }
}
