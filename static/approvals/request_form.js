// The new-request form shows the fields the chosen type's fulfilment needs (a purchase's cost
// centre, an access request's resource, role and period) and hides the others. Without this
// script every field shows, and the server says which ones a type needs.
(function () {
  "use strict";
  function sync() {
    var type = document.getElementById("id_request_type");
    if (!type) return;
    var option = type.options[type.selectedIndex];
    var fulfilment = option ? option.getAttribute("data-fulfilment") || "" : "";
    document.querySelectorAll("#request-form [data-for]").forEach(function (input) {
      var field = input.closest(".field");
      if (field) field.hidden = input.getAttribute("data-for") !== fulfilment && !field.classList.contains("invalid");
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    sync();
    var type = document.getElementById("id_request_type");
    if (type) type.addEventListener("change", sync);
  });
})();
