// Who of the people the user chats with is online, and when the others were
// last seen: from `welcome`, `invite`, the `start` ack and `presence` events.

import { shortTime } from "./dom.js";

export class Presences {
  constructor() {
    this.byUser = new Map(); // username -> {user, online, last_seen}
  }

  /** Take a list of Presence (missing on an older server: nothing changes). */
  update(list) {
    for (const presence of list ?? []) this.byUser.set(presence.user, presence);
  }

  online(user) {
    return this.byUser.get(user)?.online === true;
  }

  /** "online", "last seen 14:05", or "" when the server told nothing. */
  describe(user) {
    const presence = this.byUser.get(user);
    if (!presence) return "";
    if (presence.online) return "online";
    return presence.last_seen ? `last seen ${shortTime(presence.last_seen)}` : "offline";
  }
}
