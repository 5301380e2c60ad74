// iocsync console: the only script. Written for this repo, pinned with it, no build step.
// Every page works without it: it only adds a confirmation dialog to buttons and links that
// carry data-confirm (without JavaScript those links open a confirmation page instead).
(function () {
  "use strict";
  document.addEventListener("click", function (e) {
    var el = e.target.closest ? e.target.closest("[data-confirm]") : null;
    if (!el) { return; }
    if (!window.confirm(el.getAttribute("data-confirm"))) {
      e.preventDefault();
      return;
    }
    // A link with data-post: confirmed, so post its hidden form directly (one click).
    var formId = el.getAttribute("data-post");
    if (formId) {
      e.preventDefault();
      var form = document.getElementById(formId);
      if (form) { form.submit(); }
    }
  });
})();
