// The inbox's keyboard: j/k move between requests (the current row is open: its decision
// controls show), x selects, a approves (a first press only picks Approve, a second confirms, so
// no stray key decides), r rejects (after a comment), o opens, / searches, ? shows the help (u,
// undo, is live.js's, for every page). Rows are replaced by htmx (an action's answer
// or a live push), so the current row is remembered by its id, not by the element.
(() => {
  let currentId = null;
  let armed = null; // the comment box waiting for Enter to reject
  let approving = null; // the Approve button a second `a` presses

  function say(text) {
    const out = document.getElementById("inbox-keys-said");
    if (out) out.textContent = text;
  }

  function stopApproving() {
    if (!approving) return;
    approving.removeAttribute("data-armed");
    approving = null;
    say("");
  }

  const rows = () => Array.from(document.querySelectorAll("#inbox-list tr[data-row]"));
  const current = () => (currentId && document.getElementById(currentId)) || null;

  function mark(row, focus = true) {
    document.querySelectorAll("tr[data-row].current").forEach((r) => {
      r.classList.remove("current");
      r.removeAttribute("aria-current");
    });
    if (!row) return;
    currentId = row.id;
    row.classList.add("current");
    row.setAttribute("aria-current", "true");
    if (focus) {
      row.focus({ preventScroll: true });
      row.scrollIntoView({ block: "nearest" });
    }
  }

  function move(step) {
    const all = rows();
    if (!all.length) return;
    const at = all.indexOf(current());
    const next = at === -1 ? (step > 0 ? 0 : all.length - 1) : Math.min(all.length - 1, Math.max(0, at + step));
    mark(all[next]);
  }

  function disarm() {
    if (!armed) return;
    armed.removeAttribute("data-armed");
    armed.placeholder = "";
    armed = null;
  }

  function typing(target) {
    return target.closest("input, textarea, select, [contenteditable]") !== null;
  }

  function updateCount() {
    const n = document.querySelectorAll("input[data-select]:checked").length;
    const out = document.querySelector("[data-selected-count]");
    if (out) out.textContent = n ? `(${n} selected)` : "";
    // The bulk panel shows once something is selected (or it has something to say).
    const bulk = document.getElementById("bulk-form");
    if (bulk) bulk.classList.toggle("shown", n > 0 || bulk.querySelector("[role=alert]") !== null);
  }
  updateCount();

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (approving && event.key !== "a") {
      stopApproving();
      if (event.key === "Escape") {
        event.preventDefault();
        return;
      }
    }
    if (armed && event.target === armed) {
      if (event.key === "Escape") {
        const row = armed.closest("tr[data-row]");
        disarm();
        mark(row);
        event.preventDefault();
      } else if (event.key === "Enter" && !event.shiftKey) {
        event.preventDefault();
        if (!armed.value.trim()) {
          say("Write why you reject first; then Enter rejects, Esc cancels.");
          return;
        }
        const button = armed.form.querySelector('button[value="reject"]');
        disarm();
        say("");
        button?.click();
      }
      return;
    }
    if (typing(event.target)) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    const row = current();
    switch (event.key) {
      case "j":
        move(1);
        break;
      case "k":
        move(-1);
        break;
      case "x": {
        const box = row?.querySelector("input[data-select]");
        if (!box) return;
        box.checked = !box.checked;
        updateCount();
        break;
      }
      case "a": {
        const button = row?.querySelector('button[value="approve"]');
        if (!button) return;
        if (approving === button && button.isConnected) {
          stopApproving();
          button.click();
        } else {
          stopApproving();
          approving = button;
          button.setAttribute("data-armed", "approve");
          say(`Press a again to approve “${row.querySelector("a")?.textContent ?? ""}”, Esc to cancel.`);
        }
        break;
      }
      case "r": {
        const box = row?.querySelector("textarea[name=comment]");
        if (!box) return;
        armed = box;
        box.setAttribute("data-armed", "reject");
        box.placeholder = "Why reject? Enter rejects, Esc cancels.";
        box.focus();
        break;
      }
      case "o":
      case "Enter": {
        const link = row?.querySelector("a[href]");
        if (!link || (event.key === "Enter" && event.target !== row)) return;
        link.click();
        break;
      }
      case "/":
        document.querySelector("#inbox-filters input[name=q]")?.focus();
        break;
      case "?":
        document.getElementById("shortcuts-help")?.showModal();
        break;
      default:
        return;
    }
    event.preventDefault();
  });

  document.addEventListener("click", (event) => {
    if (event.target.closest("[data-shortcuts-help]")) {
      document.getElementById("shortcuts-help")?.showModal();
      return;
    }
    const row = event.target.closest("tr[data-row]");
    if (row) mark(row, false);
    // "Decide" opens the row: its comment box takes the focus.
    if (row && event.target.closest("[data-open-row]")) {
      const box = row.querySelector("form.decide textarea");
      box?.focus();
      requestAnimationFrame(() => box?.focus()); // again once the opened row is drawn
    }
  });

  document.addEventListener("change", (event) => {
    if (event.target.matches("[data-select-all]")) {
      document.querySelectorAll("input[data-select]").forEach((box) => {
        box.checked = event.target.checked;
      });
    }
    if (event.target.matches("[data-select], [data-select-all]")) updateCount();
  });

  // After any swap (an answer over HTTP, or a live push over the websocket): keep the current row
  // marked, and if focus fell out with a replaced element, put it back on the same request's row
  // (live.js first gives it to an answer that asks for attention).
  function restore() {
    const row = current();
    if (row) mark(row, document.activeElement === document.body || document.activeElement === null);
    updateCount();
  }
  for (const name of ["htmx:afterSettle", "htmx:oobAfterSwap", "htmx:wsAfterMessage"]) {
    document.addEventListener(name, restore);
  }
})();
