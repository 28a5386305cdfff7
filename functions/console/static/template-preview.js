// The template editor's email preview is a frame the form posts its draft into (the email's own inline styles
// are allowed there and nowhere else in the console): it is posted once the page has loaded, and again each time
// htmx has checked a change to the draft, so the frame follows the typing. Without script, "Preview" does it.
(function () {
  "use strict";
  function refresh() {
    var form = document.querySelector("form[data-live-preview]");
    var button = form && form.querySelector("[data-preview-button]");
    if (button) {
      form.requestSubmit(button);
    }
  }
  document.addEventListener("DOMContentLoaded", refresh);
  document.addEventListener("htmx:afterSwap", function (event) {
    var source = event.detail && event.detail.elt;
    if (source && source.matches && source.matches("form[data-live-preview]")) {
      refresh();
    }
  });
})();
