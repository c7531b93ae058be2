// The Reviews tab's keyboard, as the inbox's: j/k move between reviews, x selects the current
// one, * selects the page, a keeps (a first press only picks Keep, a second confirms, so no
// stray key decides), r revokes (after a comment: Enter sends), ? shows the help. The list is
// redrawn by htmx (an answer, a live push), so the current row is remembered by its id.
(() => {
  let currentId = null;
  let keeping = false;

  const say = (text) => {
    const out = document.getElementById("reviews-keys-said");
    if (out) out.textContent = text;
  };
  const rows = () => Array.from(document.querySelectorAll("#reviews-list tr[data-row]"));
  const current = () => (currentId && document.getElementById(currentId)) || null;
  const selected = () => Array.from(document.querySelectorAll("#reviews-list input[data-select]:checked"));
  const keepButton = () => document.querySelector("#reviews-form [data-keep]");

  function mark(row) {
    document.querySelectorAll("#reviews-list tr.current").forEach((r) => {
      r.classList.remove("current");
      r.removeAttribute("aria-current");
    });
    if (!row) return;
    currentId = row.id;
    row.classList.add("current");
    row.setAttribute("aria-current", "true");
    row.focus({ preventScroll: true });
    row.scrollIntoView({ block: "nearest" });
  }

  function move(step) {
    const all = rows();
    if (!all.length) return;
    const at = all.indexOf(current());
    mark(all[at === -1 ? (step > 0 ? 0 : all.length - 1) : Math.min(all.length - 1, Math.max(0, at + step))]);
  }

  function updateCount() {
    const n = selected().length;
    const out = document.querySelector("#reviews-list [data-selected-count]");
    if (out) out.textContent = n ? `(${n} selected)` : "";
  }

  function selectCurrentIfNone() {
    if (selected().length) return true;
    const box = current() && current().querySelector("input[data-select]");
    if (!box) return false;
    box.checked = true;
    updateCount();
    return true;
  }

  function stopKeeping() {
    if (!keeping) return;
    keeping = false;
    const button = keepButton();
    if (button) button.removeAttribute("data-armed");
    say("");
  }

  document.addEventListener("change", (event) => {
    // A campaign's or a person's box selects every review under it (and the boxes between).
    const group = event.target.closest("[data-select-group]");
    if (group) {
      document
        .querySelectorAll(`#reviews-list input[data-groups~="${group.dataset.selectGroup}"]`)
        .forEach((box) => (box.checked = group.checked));
    }
    if (event.target.closest("#reviews-list input[type=checkbox]")) updateCount();
  });

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const comment = document.getElementById("reviews-comment");
    if (event.target === comment) {
      if (event.key === "Escape") comment.blur();
      return; // Enter in the comment submits the form (its first button is Keep: revoke below)
    }
    if (event.target.closest("input, textarea, select, [contenteditable]")) return;
    if (keeping && event.key !== "a") stopKeeping();
    if (event.key === "j" || event.key === "k") {
      event.preventDefault();
      move(event.key === "j" ? 1 : -1);
    } else if (event.key === "x") {
      const box = current() && current().querySelector("input[data-select]");
      if (box) {
        event.preventDefault();
        box.checked = !box.checked;
        updateCount();
      }
    } else if (event.key === "*") {
      event.preventDefault();
      document.querySelectorAll("#reviews-list input[data-select]").forEach((box) => (box.checked = true));
      updateCount();
    } else if (event.key === "a") {
      event.preventDefault();
      if (!selectCurrentIfNone()) return;
      const button = keepButton();
      if (keeping && button) {
        stopKeeping();
        button.click();
      } else if (button) {
        keeping = true;
        button.setAttribute("data-armed", "true");
        say(`Press a again to keep ${selected().length} selected.`);
      }
    } else if (event.key === "r") {
      event.preventDefault();
      if (!selectCurrentIfNone() || !comment) return;
      comment.dataset.revoke = "true";
      comment.placeholder = "Why is it revoked? Enter revokes the selected.";
      comment.focus();
    } else if (event.key === "?") {
      event.preventDefault();
      document.getElementById("reviews-shortcuts")?.showModal();
    }
  });

  // Enter in the comment after `r` revokes (not keeps) the selected reviews.
  document.addEventListener("keydown", (event) => {
    const comment = document.getElementById("reviews-comment");
    if (event.target !== comment || event.key !== "Enter" || comment.dataset.revoke !== "true") return;
    event.preventDefault();
    delete comment.dataset.revoke;
    document.querySelector("#reviews-form [data-revoke]")?.click();
  });

  document.addEventListener("click", (event) => {
    if (event.target.closest("[data-shortcuts-help]")) document.getElementById("reviews-shortcuts")?.showModal();
    const row = event.target.closest("#reviews-list tr[data-row]");
    if (row && !event.target.closest("input, a, button")) mark(row);
  });

  document.body.addEventListener("htmx:afterSwap", () => {
    updateCount();
    if (currentId && document.getElementById(currentId)) mark(document.getElementById(currentId));
  });
  updateCount();
})();
