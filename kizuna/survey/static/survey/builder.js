// Question form: show only the settings of the chosen question type.
// Without JavaScript every fieldset stays visible, and the server ignores the ones that don't apply.
(function () {
  "use strict";
  function update(form) {
    var kind = form.querySelector("select[name=kind]");
    if (!kind) { return; }
    form.querySelectorAll("fieldset.kind-options").forEach(function (fieldset) {
      var kinds = (fieldset.getAttribute("data-kinds") || "").split(" ");
      fieldset.hidden = kinds.indexOf(kind.value) === -1;
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form.question-form").forEach(function (form) {
      update(form);
      form.addEventListener("change", function (event) {
        if (event.target.name === "kind") { update(form); }
      });
    });
  });
})();
