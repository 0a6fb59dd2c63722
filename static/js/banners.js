// System notifications (`notify` on /control) as banners under the top bar.
// A global notice that came just before the connection dropped is about the
// drop ("this server is restarting; reconnecting"): it goes once connected again.

import { byId, el, timeElement } from "./dom.js";

const KEEP = 3; // banners shown at most; older ones make way
const ABOUT_THE_DROP_MS = 2000; // a global notice this soon before a disconnect announced it

export class Banners {
  constructor() {
    this.root = byId("banners");
  }

  /** Show a notice: {text, ts, id}; `where` names the chat for a chat's notice. */
  show(notice, where = null) {
    const close = el("button", { type: "button", class: "btn btn-quiet btn-small", "aria-label": "Dismiss notification" }, "Dismiss");
    const banner = el(
      "div",
      { class: "banner", role: "alert" },
      el("span", { class: "banner-icon", "aria-hidden": "true" }, "!"),
      el(
        "p",
        { class: "banner-text" },
        el("strong", {}, where ? `Notice in ${where}: ` : "Notice: "),
        notice.text,
        " ",
        timeElement(notice.ts),
      ),
      close,
    );
    if (!notice.id) banner.dataset.shownAt = String(Date.now());
    close.addEventListener("click", () => banner.remove());
    this.root.append(banner);
    while (this.root.children.length > KEEP) this.root.firstElementChild.remove();
  }

  /** The connection dropped: the global notices of the last moments were about it. */
  dropped() {
    for (const banner of this.root.querySelectorAll("[data-shown-at]")) {
      if (Date.now() - Number(banner.dataset.shownAt) < ABOUT_THE_DROP_MS) banner.dataset.aboutDrop = "";
    }
  }

  /** Connected again: what announced the drop is over. */
  reconnected() {
    for (const banner of this.root.querySelectorAll("[data-about-drop]")) banner.remove();
  }
}
