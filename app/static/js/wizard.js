/*
 * Reservkort – the application wizard's small helpers (no inline script: CSP).
 *
 * Card step (and the return desk's scan mode, form[data-autosubmit-card]): when the reader
 * bridge fills the card-number field (it fires "change"), the form is submitted, as a
 * keyboard-wedge scanner does by pressing Enter. Only once per page.
 * Reason step: choosing a reason moves the end date to that reason's maximum unless the user
 * picked an earlier date themselves, sets the date field's max, and shows the assignment field
 * only for a temporary assignment.
 */
(function () {
  "use strict";

  function initCardStep(form) {
    var submitted = false;
    form.addEventListener("submit", function () { submitted = true; });
    var field = form.querySelector("[data-card-serial]");
    if (!field) { return; }
    field.addEventListener("change", function () {
      // Deferred: a scanner's Enter submits the form itself; never submit twice.
      window.setTimeout(function () {
        if (!submitted && field.value.trim()) {
          submitted = true;
          if (typeof form.requestSubmit === "function") { form.requestSubmit(); } else { form.submit(); }
        }
      }, 0);
    });
  }

  function initReasonStep(form) {
    var date = form.querySelector("input[name=valid_until]");
    var group = form.querySelector("[data-assignment-group]");
    var radios = Array.prototype.slice.call(form.querySelectorAll("input[name=reason]"));
    var lastMax = date ? date.getAttribute("max") : null;

    function chosen() {
      for (var i = 0; i < radios.length; i++) { if (radios[i].checked) { return radios[i]; } }
      return null;
    }

    function update() {
      var radio = chosen();
      if (group) { group.hidden = !(radio && radio.value === "temporary_assignment"); }
      if (!radio || !date) { return; }
      var max = radio.getAttribute("data-max-date");
      // An end date still at the old maximum (or empty) follows the new maximum.
      if (!date.value || date.value === lastMax || date.value > max) { date.value = max; }
      date.setAttribute("max", max);
      lastMax = max;
    }

    radios.forEach(function (radio) { radio.addEventListener("change", update); });
    update();
  }

  function init() {
    var card = document.querySelector("form[data-autosubmit-card]");
    if (card) { initCardStep(card); }
    var reason = document.querySelector("form[data-reason-form]");
    if (reason) { initReasonStep(reason); }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
}());
