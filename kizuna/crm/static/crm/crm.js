// "Select all on this page" for the lead and contact lists. Without JavaScript
// the box stays hidden and each row is ticked by hand. The list is replaced by
// htmx while searching, so new content is wired up again on htmx:load.
(function () {
  function wire(box) {
    if (box.dataset.wired) { return; }
    box.dataset.wired = "1";
    var form = box.form;
    var name = box.getAttribute("data-select-all");
    var rows = function () {
      return Array.prototype.slice.call(form.querySelectorAll('input[type="checkbox"][name="' + name + '"]'));
    };
    var sync = function () {
      var all = rows();
      var checked = all.filter(function (row) { return row.checked; }).length;
      box.checked = all.length > 0 && checked === all.length;
      box.indeterminate = checked > 0 && checked < all.length;
    };
    box.hidden = false;
    box.addEventListener("change", function () {
      rows().forEach(function (row) { row.checked = box.checked; });
      sync();
    });
    form.addEventListener("change", function (event) {
      if (event.target !== box) { sync(); }
    });
    sync();
  }
  function wireAll(root) {
    root.querySelectorAll("input[data-select-all]").forEach(wire);
  }
  // The search box asks for the list as one types (hx-trigger "input changed"). Its
  // change event on leaving the box, for example to tick "select all", would ask
  // again and replace the rows just ticked: the filter form hears change events of
  // its selects only.
  document.addEventListener("change", function (event) {
    if (event.target.matches && event.target.matches('form.list-filters input[type="search"]')) {
      event.stopPropagation();
    }
  }, true);
  document.addEventListener("DOMContentLoaded", function () { wireAll(document); });
  document.addEventListener("htmx:load", function (event) { wireAll(event.target); });
})();
