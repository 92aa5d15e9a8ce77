// "Select all on this page" for the lead and contact lists. Without JavaScript
// the box stays hidden and each row is ticked by hand.
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("input[data-select-all]").forEach(function (box) {
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
  });
  // Deleting asks again on its own page; nothing to confirm here.
});
