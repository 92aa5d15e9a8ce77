// Template editor: insert merge fields and extension placeholders at the cursor
// of the subject or body the user last focused. Without JavaScript the toolbar
// stays hidden and the placeholder list is shown instead.
(function () {
  "use strict";

  function setUp(editor) {
    var toolbar = editor.querySelector("[data-editor-toolbar]");
    if (!toolbar) return;
    var targets = editor.querySelectorAll("[data-merge-target]");
    if (!targets.length) return;
    var last = editor.querySelector("textarea[data-merge-target]") || targets[0];
    targets.forEach(function (field) {
      field.addEventListener("focus", function () { last = field; });
    });

    function insert(text) {
      var field = last;
      var start = field.selectionStart == null ? field.value.length : field.selectionStart;
      var end = field.selectionEnd == null ? start : field.selectionEnd;
      field.value = field.value.slice(0, start) + text + field.value.slice(end);
      field.focus();
      field.setSelectionRange(start + text.length, start + text.length);
      field.dispatchEvent(new Event("input", { bubbles: true }));
    }

    toolbar.addEventListener("click", function (event) {
      var button = event.target.closest("button");
      if (!button || !toolbar.contains(button)) return;
      if (button.hasAttribute("data-insert")) {
        insert(button.getAttribute("data-insert"));
      } else if (button.hasAttribute("data-insert-from")) {
        var select = document.getElementById(button.getAttribute("data-insert-from"));
        if (select && select.value) insert(select.value);
      }
    });
    // A new template: offer only the merge fields of the module chosen in the form.
    var moduleSelect = editor.querySelector("select[name=module]");
    var mergeSelect = toolbar.querySelector("#merge-field-select");
    function followModule() {
      if (!moduleSelect || !mergeSelect) return;
      var firstVisible = null;
      Array.prototype.forEach.call(mergeSelect.options, function (option) {
        var module = option.getAttribute("data-module");
        var shown = !module || module === moduleSelect.value;
        option.hidden = !shown;
        option.disabled = !shown;
        if (shown && firstVisible === null) firstVisible = option;
      });
      if (mergeSelect.selectedOptions.length && mergeSelect.selectedOptions[0].disabled && firstVisible) {
        mergeSelect.value = firstVisible.value;
      }
    }
    if (moduleSelect) moduleSelect.addEventListener("change", followModule);
    followModule();
    toolbar.hidden = false;
  }

  function start() {
    document.querySelectorAll("[data-mail-editor]").forEach(setUp);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
