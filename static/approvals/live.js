// Live updates arrive over the websocket (htmx ws extension) and replace elements by id.
// A request that newly waits for this user has no row in the inbox yet: add it on top, unless
// the inbox is filtered (the new row may not match).
document.addEventListener("htmx:oobErrorNoTarget", (event) => {
  const row = event.detail.content;
  const rows = document.querySelector("#inbox-rows[data-live-insert-here]");
  if (!rows || !row || !row.matches || !row.matches("tr[data-live-insert]")) return;
  document.getElementById("inbox-empty")?.remove();
  rows.prepend(row);
  htmx.process(row);
});

// A pushed actions box replaces the one on the page only when what this person may do changed,
// and even then keeps what the person was typing, so that no push wipes a half-written comment.
document.addEventListener("htmx:oobBeforeSwap", (event) => {
  const incoming = event.detail.fragment?.firstElementChild;
  const current = event.detail.target;
  if (!incoming || !current || !current.matches(".actions-box[data-abilities]")) return;
  if (incoming.getAttribute("data-abilities") === current.getAttribute("data-abilities")) {
    event.detail.shouldSwap = false;
    return;
  }
  current.querySelectorAll("textarea[id], input[type=text][id]").forEach((field) => {
    if (!field.value) return;
    const twin = incoming.querySelector(`#${CSS.escape(field.id)}`);
    if (!twin) return;
    if (twin.tagName === "TEXTAREA") twin.textContent = field.value;
    else twin.setAttribute("value", field.value);
  });
});
