// The new-request form shows the fields the chosen type's fulfilment needs (a purchase's cost
// centre, an access request's resource, role and period) and hides the others (an access
// request's amount among them). Without this
// script every field shows, and the server says which ones a type needs.
(function () {
  "use strict";
  function sync() {
    var type = document.getElementById("id_request_type");
    if (!type) return;
    var option = type.options[type.selectedIndex];
    var fulfilment = option ? option.getAttribute("data-fulfilment") || "" : "";
    document.querySelectorAll("#request-form [data-for], #request-form [data-not-for]").forEach(function (input) {
      var field = input.closest(".field");
      if (!field || field.classList.contains("invalid")) return;
      field.hidden = input.hasAttribute("data-for")
        ? input.getAttribute("data-for") !== fulfilment
        : input.getAttribute("data-not-for") === fulfilment;
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    sync();
    var type = document.getElementById("id_request_type");
    if (type) type.addEventListener("change", sync);
  });
})();
