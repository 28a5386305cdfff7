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
  // htmx dispatches this on the element that made the request: here, the editor's form.
  document.addEventListener("htmx:afterRequest", function (event) {
    if (event.target.matches && event.target.matches("form[data-live-preview]")) {
      refresh();
    }
  });
})();
