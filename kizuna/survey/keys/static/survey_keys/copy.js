// Copy buttons: <button data-copy-target="element-id" data-copied-label="Copied" hidden>.
// Without JavaScript (or the Clipboard API) the button stays hidden and the text is selectable.
(function () {
  "use strict";
  if (!navigator.clipboard) {
    return;
  }
  document.querySelectorAll("[data-copy-target]").forEach(function (button) {
    var target = document.getElementById(button.getAttribute("data-copy-target"));
    if (!target) {
      return;
    }
    var label = button.textContent;
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(target.textContent.trim()).then(function () {
        button.textContent = button.getAttribute("data-copied-label") || label;
        window.setTimeout(function () {
          button.textContent = label;
        }, 2000);
      });
    });
  });
})();
