// A multi-select of people looked up as you type (select2 with AJAX): only the chosen people
// are in the page; the choices come from the form's look-up address (data-lookup-url).
(function () {
  "use strict";

  function init() {
    if (!window.jQuery || !window.jQuery.fn.select2) {
      return;
    }
    window.jQuery("select.rk-person-lookup").each(function () {
      var select = window.jQuery(this);
      select.select2({
        theme: "bootstrap",
        width: "100%",
        multiple: true,
        minimumInputLength: 2,
        placeholder: select.data("placeholder") || "",
        ajax: {
          url: select.data("lookupUrl"),
          dataType: "json",
          delay: 250,
          data: function (params) { return {q: params.term}; },
          processResults: function (data) { return {results: data.results}; }
        }
      });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
