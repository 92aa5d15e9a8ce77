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
