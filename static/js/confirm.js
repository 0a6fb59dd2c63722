// A question asked in the page (a <dialog>, never window.confirm): Cancel, or
// go ahead, with the action's error shown in the dialog when it fails.

import { byId, setText } from "./dom.js";

export class ConfirmDialog {
  /** `id`: the <dialog>; `act()` resolves to an error message, or null when done. */
  constructor(id, act) {
    this.dialog = byId(id);
    this.error = this.dialog.querySelector(".form-error");
    this.dialog.querySelector("[data-cancel]").addEventListener("click", () => this.dialog.close());
    this.dialog.querySelector("form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const problem = await act();
      if (problem) setText(this.error, problem);
      else this.dialog.close();
    });
  }

  open() {
    setText(this.error, "");
    this.dialog.showModal();
  }
}
