// System notifications (`notify` on /control) as banners under the top bar.

import { byId, el, timeElement } from "./dom.js";

const KEEP = 3; // banners shown at most; older ones make way

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
    close.addEventListener("click", () => banner.remove());
    this.root.append(banner);
    while (this.root.children.length > KEEP) this.root.firstElementChild.remove();
  }

  clear() {
    this.root.replaceChildren();
  }
}
