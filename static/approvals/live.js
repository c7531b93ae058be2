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
