/*
 * Reservkort – what FAB's widgets lack for assistive technology, added after they are set up:
 * select2's search field gets the name of its field and its list of chosen values a list role;
 * Bootstrap's dropdown toggles tell whether they are open; the page's first error or, on a
 * form page, its first field takes the focus (the wizard's steps, the admin forms).
 */
(function () {
  "use strict";

  function labelFor(select) {
    var label = select.id ? document.querySelector("label[for='" + select.id + "']") : null;
    return label ? label.textContent.trim() : (select.getAttribute("aria-label") || select.name || "");
  }

  function fixSelect2() {
    document.querySelectorAll("select.select2-hidden-accessible").forEach(function (select) {
      var container = select.nextElementSibling;
      if (!container || !container.classList.contains("select2")) { return; }
      var name = labelFor(select);
      container.querySelectorAll(".select2-search__field").forEach(function (field) {
        if (name) { field.setAttribute("aria-label", name); }
      });
      container.querySelectorAll("ul.select2-selection__rendered").forEach(function (list) {
        list.setAttribute("role", "list");
      });
      container.querySelectorAll("[role=combobox]").forEach(function (box) {
        if (name && !box.getAttribute("aria-label") && !box.getAttribute("aria-labelledby")) {
          box.setAttribute("aria-label", name);
        }
      });
    });
  }

  function syncDropdowns() {
    document.querySelectorAll("[data-toggle=dropdown]").forEach(function (toggle) {
      var open = toggle.parentElement && toggle.parentElement.classList.contains("open");
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
    });
  }

  function focusFirst() {
    // Only on the wizard's steps and on forms that ask for it: elsewhere the page starts at the top.
    var form = document.querySelector(".rk-wizard form, main form[data-rk-autofocus]");
    if (!form) { return; }
    if (document.activeElement && document.activeElement !== document.body) { return; }
    var target = document.querySelector("[data-rk-focus-error], main .alert-danger, main .alert-warning")
      || form.querySelector("input:not([type=hidden]):not([disabled]), select, textarea");
    if (!target) { return; }
    if (!target.matches("input, select, textarea, a, button, [tabindex]")) {
      target.setAttribute("tabindex", "-1");
    }
    target.focus();
  }

  function ready() {
    fixSelect2();
    syncDropdowns();
    focusFirst();
    if (window.jQuery) {
      window.jQuery(document).on("select2:open select2:close change", fixSelect2);
      window.jQuery(document).on("shown.bs.dropdown hidden.bs.dropdown", syncDropdowns);
    }
  }

  if (window.jQuery) { window.jQuery(ready); } else { document.addEventListener("DOMContentLoaded", ready); }
})();
