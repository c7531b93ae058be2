// Live updates arrive over the websocket (htmx's ws extension) as the same fragments an answer
// over HTTP brings, with stable ids, and replace the elements with those ids. What the person is
// working on (what they type or selected, the last answer they got) comes marked hx-preserve in
// a push, so htmx keeps the element itself, with its text, selection and focus.
(() => {
  // On a phone the navigation is a menu behind a button, and the inbox's filters but search are
  // behind another (app.css): they open and close here.
  document.documentElement.classList.add("js");
  document.addEventListener("click", (event) => {
    const toggle = event.target.closest(".menu-toggle, .filters-toggle");
    if (!toggle) return;
    const nav = document.getElementById(toggle.getAttribute("aria-controls"));
    const open = !nav.classList.contains("open");
    nav.classList.toggle("open", open);
    toggle.setAttribute("aria-expanded", String(open));
  });

  // A plain form drawn by a live push has no CSRF token of its own (a push is drawn without the
  // person's request): it takes the page's, from <body hx-headers>, as it is sent.
  document.addEventListener(
    "submit",
    (event) => {
      const form = event.target;
      if (!(form instanceof HTMLFormElement) || form.method.toLowerCase() !== "post") return;
      let field = form.querySelector("input[name=csrfmiddlewaretoken]");
      if (field?.value) return;
      const token = JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"];
      if (!token) return;
      if (!field) {
        field = document.createElement("input");
        field.type = "hidden";
        field.name = "csrfmiddlewaretoken";
        form.append(field);
      }
      field.value = token;
    },
    true,
  );

  // A request that newly belongs in the inbox list this page shows: on an empty list its row goes
  // straight in; on a list the person may be reading, it waits behind a "1 new request" button
  // on top, so that no row moves under their cursor, until they ask for it.
  const arrived = new Map(); // row id -> the row, newest last
  function showArrived() {
    const button = document.getElementById("inbox-new");
    if (!button) return;
    const n = arrived.size;
    button.textContent = `${n} new request${n === 1 ? "" : "s"}: show`;
    button.hidden = n === 0;
  }
  function addRows(rows, row) {
    document.getElementById("inbox-empty")?.remove();
    rows.prepend(row);
    htmx.process(row);
  }
  function arrive(row) {
    const rows = document.querySelector("#inbox-rows[data-live-insert-here]");
    if (!rows || !row.matches("tr[data-live-insert]")) {
      arrived.delete(row.id); // it no longer belongs here
    } else if (!rows.querySelector("tr[data-row]")) {
      addRows(rows, row);
    } else {
      arrived.delete(row.id);
      arrived.set(row.id, row);
    }
    showArrived();
  }
  document.addEventListener("click", (event) => {
    if (!event.target.closest("#inbox-new")) return;
    const rows = document.querySelector("#inbox-rows");
    if (rows) for (const row of arrived.values()) addRows(rows, row);
    arrived.clear();
    showArrived();
    rows?.querySelector("tr[data-row]")?.focus();
  });
  // A new drawing of the list (filters, a bulk answer, catching up) shows what it shows.
  document.addEventListener("htmx:afterSettle", (event) => {
    if (event.target.id === "inbox-list" || event.target.closest?.("#inbox-list")) {
      for (const id of arrived.keys()) if (document.getElementById(id)) arrived.delete(id);
      if (event.target.id === "inbox-list") arrived.clear();
      showArrived();
    }
  });

  // A push carries every fragment that may show the change; a page shows some of them. Before
  // htmx swaps a push, the fragments with nothing to replace here are taken out (htmx would log
  // each as an error); a row new to the inbox list arrives (above).
  htmx.defineExtension("live", {
    transformResponse(text, xhr) {
      if (xhr) return text; // an answer over HTTP: it targets what its request asked for
      const push = document.createElement("template");
      push.innerHTML = text;
      for (const part of Array.from(push.content.children)) {
        const oob = part.getAttribute("hx-swap-oob") || "true";
        const at = oob.indexOf(":");
        const target = at === -1 ? part.id && `#${CSS.escape(part.id)}` : oob.slice(at + 1);
        if (target && document.querySelector(target)) continue;
        part.remove();
        if (part.matches("tr[data-row][id^=request-]")) arrive(part);
      }
      // Table rows first: htmx parses the push as a template, where a row after other elements
      // would be dropped.
      const parts = Array.from(push.content.children);
      const rowsFirst = [...parts.filter((p) => p.tagName === "TR"), ...parts.filter((p) => p.tagName !== "TR")];
      return rowsFirst.map((p) => p.outerHTML).join("");
    },
  });

  // A message shown once on arrival ("Your request is submitted and waiting for review.") may
  // speak of the request as it stood then: it says in data-while-status while which statuses it
  // holds, and goes once a change moves the request out of them.
  function dropStaleMessages() {
    const status = document.querySelector("[data-testid=live-status]")?.dataset.status;
    if (!status) return;
    for (const message of document.querySelectorAll("main > [role=status] > .messages [data-while-status]")) {
      if (!message.dataset.whileStatus.split(" ").includes(status)) message.remove();
    }
    const list = document.querySelector("main > [role=status] > .messages");
    if (list && !list.children.length) list.parentElement.remove();
  }
  for (const name of ["htmx:wsAfterMessage", "htmx:afterSettle"]) document.addEventListener(name, dropStaleMessages);

  // A button says it is at work from the click to the answer, and takes no second click meanwhile
  // (an action sent twice would count once anyway: each form carries its action's id).
  document.addEventListener("htmx:beforeRequest", (event) => {
    const button = event.detail.requestConfig?.triggeringEvent?.submitter;
    if (!button) return;
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    event.detail.elt.addEventListener(
      "htmx:afterRequest",
      () => {
        button.disabled = false;
        button.removeAttribute("aria-busy");
      },
      { once: true },
    );
  });

  // A chart wider than a phone starts at its right end: today, not the start of the period.
  function chartsAtToday() {
    for (const chart of document.querySelectorAll(".chart")) chart.scrollLeft = chart.scrollWidth;
  }
  document.addEventListener("DOMContentLoaded", chartsAtToday);
  document.addEventListener("htmx:afterSettle", chartsAtToday);

  // "Recently on your desk" goes once its last request is back on the list above.
  document.addEventListener("htmx:oobAfterSwap", () => {
    const recent = document.getElementById("recent-rows");
    if (recent && !recent.querySelector("tr")) document.getElementById("recent")?.setAttribute("hidden", "");
  });

  // While the socket is down the page says so; when it is back, the page catches up on what it
  // missed: it draws again what it shows (data-catch-up, the same GET a reload would make; a
  // request's page gets its request from the socket itself as it opens).
  let lost = false;
  let leaving = false;
  window.addEventListener("pagehide", () => {
    leaving = true;
  });
  const RECONNECTS = [1006, 1011, 1012, 1013]; // the closes htmx's ws extension reconnects after
  document.addEventListener("htmx:wsClose", (event) => {
    const note = document.getElementById("live-offline");
    if (leaving || !note) return;
    lost = true;
    if (!RECONNECTS.includes(event.detail.event.code)) {
      note.textContent = "Live updates have stopped on this page; reload it to see the latest.";
    }
    note.removeAttribute("hidden");
  });
  document.addEventListener("htmx:wsOpen", (event) => {
    document.getElementById("live-offline")?.setAttribute("hidden", "");
    if (!lost) return;
    lost = false;
    const shown = event.target.closest("[data-catch-up]")?.dataset.catchUp;
    if (shown && document.querySelector(shown)) {
      htmx.ajax("GET", window.location.href, { target: shown, select: shown, swap: "outerHTML" });
    }
  });

  // The inbox's filters change without a reload: the page tells its socket what it shows now
  // (and again after the socket reconnects), so that pushes add only the rows that belong.
  let socket = null;
  let sent = null;
  function sendFilters(force) {
    const list = document.getElementById("inbox-list");
    if (!socket || !list) return;
    const filters = list.dataset.filters || "";
    if (!force && filters === sent) return;
    sent = filters;
    socket.send(JSON.stringify({ filters }));
  }
  document.addEventListener("htmx:wsOpen", (event) => {
    socket = event.detail.socketWrapper;
    sendFilters(true);
  });
  document.addEventListener("htmx:afterSettle", () => sendFilters(false));

  // An answer to the person's own action asks for attention: it takes the focus that the
  // replaced button had, never focus the person has put elsewhere.
  function focusAnswer() {
    const answer = document.querySelector("[data-autofocus]");
    if (!answer) return;
    answer.removeAttribute("data-autofocus");
    if (document.activeElement === document.body || document.activeElement === null) answer.focus();
  }
  for (const name of ["htmx:afterSettle", "htmx:oobAfterSwap"]) document.addEventListener(name, focusAnswer);

  // A decision held for its undo period says how long it has left ("in 8 s"), counted from what
  // the server said when it drew it (the browser's clock may be off); a toast goes once the period
  // is over (the push of what the decision did follows), when dismissed, or once its Undo has its
  // answer. `u` presses the newest Undo on the page.
  function secondsLeft(out) {
    if (!out.dataset.end) out.dataset.end = String(performance.now() + Number(out.dataset.seconds) * 1000);
    return Math.round((Number(out.dataset.end) - performance.now()) / 1000);
  }
  function countDown() {
    for (const out of document.querySelectorAll("[data-countdown]")) {
      const left = secondsLeft(out);
      const text = left > 0 ? `in ${left} s` : "now";
      if (out.textContent !== text) out.textContent = text;
      if (left < -1) out.closest(".toast")?.remove();
    }
  }
  setInterval(countDown, 1000);
  // A toast speaks of a decision the page shows held: once the page no longer does (undone from
  // its row, in effect, let go when the request moved on), the toast goes too.
  function dropSettledToasts() {
    for (const toast of document.querySelectorAll(".toast[data-action]")) {
      if (!document.querySelector(`.held[data-action="${CSS.escape(toast.dataset.action)}"]`)) toast.remove();
    }
  }
  for (const name of ["htmx:afterSettle", "htmx:wsAfterMessage", "htmx:oobAfterSwap"]) {
    document.addEventListener(name, dropSettledToasts);
  }
  document.addEventListener("click", (event) => {
    event.target.closest(".toast [data-dismiss]")?.closest(".toast").remove();
  });
  document.addEventListener("htmx:afterRequest", (event) => {
    event.detail.elt.closest?.(".toast")?.remove();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key !== "u" || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest("input, textarea, select, [contenteditable]")) return;
    const undo = document.querySelector("#toasts [data-undo]") || document.querySelector(".held [data-undo]");
    if (!undo) return;
    event.preventDefault();
    undo.click();
  });
})();
