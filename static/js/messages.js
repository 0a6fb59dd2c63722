// One message as a list item. Every string from the server goes in through
// el(), that is as a text node.

import { el, formatSize, nameList, timeElement } from "./dom.js";

const GROUP_MS = 5 * 60 * 1000; // messages closer than this from one sender group up

// Image types every browser decodes; others show as a card only.
const PREVIEWED = /^image\/(png|jpeg|gif|webp|avif|bmp)$/;

/** A file: name, size, a Download button, and a preview for an image. */
function fileCard(file, files) {
  const button = el(
    "button",
    { type: "button", class: "btn btn-small", "aria-label": `Download ${file.name}` },
    "Download",
  );
  button.addEventListener("click", () => files.download(file, button));
  const card = el(
    "div",
    { class: "file" },
    el("span", { class: "file-icon", "aria-hidden": "true" }),
    el(
      "span",
      { class: "file-meta" },
      el("span", { class: "file-name" }, file.name),
      el("span", { class: "file-size" }, formatSize(file.size)),
    ),
    button,
  );
  if (!PREVIEWED.test(file.type)) return card;
  const image = el("img", { class: "preview", alt: file.name, hidden: true });
  image.addEventListener("load", () => (image.hidden = false));
  files.preview(file).then(
    (url) => (image.src = url),
    () => image.remove(), // no preview; the card still downloads it
  );
  return el("div", { class: "file-with-preview" }, image, card);
}

/** An <li> for a stored Message; `files`: download(file, button), preview(file) -> Promise of a URL. */
export function messageItem(message, me, files) {
  const own = message.sender !== null && message.sender === me;
  const system = message.sender === null || message.kind === "notification";
  const item = el("li", {
    class: `msg ${system ? "msg-system" : own ? "msg-own" : "msg-other"}`,
    "data-seq": message.seq,
    "data-sender": message.sender ?? "",
    "data-ts": Date.parse(message.ts),
  });
  if (system) {
    item.append(el("p", { class: "system-text" }, message.text), timeElement(message.ts));
    return item;
  }
  const body =
    message.kind === "file" && message.file
      ? fileCard(message.file, files)
      : el("p", { class: "text" }, message.text);
  item.append(
    el(
      "div",
      { class: "bubble" },
      el("p", { class: "meta" }, el("span", { class: "sender" }, own ? "You" : message.sender), " ", timeElement(message.ts)),
      body,
    ),
  );
  return item;
}

/** An <li> for an own message not yet acknowledged (or failed). */
export function pendingItem(clientId, pending, onRetry) {
  const status = el("span", { class: "status" }, pending.failed ? "Not sent" : "Sending…");
  const meta = el("p", { class: "meta" }, el("span", { class: "sender" }, "You"), " ", status);
  if (pending.failed) {
    const retry = el("button", { type: "button", class: "btn btn-small btn-quiet" }, "Retry");
    retry.addEventListener("click", () => onRetry(clientId));
    meta.append(" ", retry);
  }
  const body = pending.file
    ? el("p", { class: "text" }, `Sending file ${pending.file.name}…`)
    : el("p", { class: "text" }, pending.text);
  return el(
    "li",
    { class: `msg msg-own msg-pending${pending.failed ? " msg-failed" : ""}`, "data-client-id": clientId },
    el("div", { class: "bubble" }, meta, body),
  );
}

/** Hide the sender line of a message that follows one from the same sender. */
export function regroup(item) {
  if (!item || item.classList.contains("msg-system") || !item.dataset.seq) return;
  const previous = item.previousElementSibling;
  const follows =
    previous &&
    previous.dataset.seq &&
    previous.dataset.sender === item.dataset.sender &&
    item.dataset.sender !== "" &&
    Number(item.dataset.ts) - Number(previous.dataset.ts) < GROUP_MS;
  item.classList.toggle("msg-cont", Boolean(follows));
}

/** "Seen by bob and carol", put under the last message they have read. */
export function seenLine(names) {
  return el("p", { class: "seen" }, `Seen by ${nameList(names)}`);
}
