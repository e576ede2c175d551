// Choices looked up as you type: every <select class="rk-lookup" data-lookup="URL"> becomes a
// select2 that asks URL?q=<typed text> for at most a few matching options. FAB adds filter
// rows to the search form when a filter is chosen, so new selects are set up then too.
(function ($) {
  "use strict";

  function setUp() {
    $("select.rk-lookup").not(".select2-hidden-accessible").each(function () {
      var $select = $(this);
      $select.select2({
        theme: "bootstrap",
        allowClear: true,
        placeholder: "",
        minimumInputLength: 1,
        width: "100%",
        ajax: {
          url: $select.data("lookup"),
          dataType: "json",
          delay: 250,
          data: function (params) { return {q: params.term}; },
          processResults: function (data) { return {results: data.results}; }
        }
      });
    });
  }

  $(function () {
    setUp();
    $(document).on("click", "a.filter", function () { window.setTimeout(setUp, 0); });
  });
}(jQuery));
