/* jitaccess: the little behaviour the pages have. Everything works without it; it adds the
   live countdown of a grant, copy buttons, and hides a revealed value when its grant ends. */
(function () {
  "use strict";

  function left(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    var parts = [];
    if (h) parts.push(h + " h");
    if (h || m) parts.push(m + " min");
    parts.push(sec + " s");
    return parts.join(" ") + " left";
  }

  /* Wipe a revealed value from the page (not only hide it), and say why. */
  function hideSecret(reason) {
    document.querySelectorAll("[data-secret-value]").forEach(function (el) {
      if ("value" in el) el.value = "";
      el.textContent = "";
      el.hidden = true;
    });
    document.querySelectorAll("[data-copy]").forEach(function (b) { b.disabled = true; b.hidden = true; });
    document.querySelectorAll("[data-secret-hidden]").forEach(function (el) {
      if (reason) el.textContent = reason;
      el.hidden = false;
    });
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-countdown]").forEach(function (el) {
      var end = Date.parse(el.getAttribute("data-countdown"));
      if (isNaN(end)) return;
      if (end - now > 0) {
        el.textContent = left(end - now);
        return;
      }
      if (el.getAttribute("data-ended") === "yes") return;
      el.setAttribute("data-ended", "yes");
      el.textContent = el.getAttribute("data-ended-text") || "ended";
      el.classList.add("countdown--ended");
      if (el.hasAttribute("data-hides-secret")) {
        hideSecret(el.getAttribute("data-hides-secret"));
      }
      if (el.hasAttribute("data-reload-on-end")) {
        /* A GET page: reload it so the server's view of the ended grant replaces this one. */
        setTimeout(function () { window.location.reload(); }, 1500);
      }
    });
  }

  function copy(button) {
    var target = document.getElementById(button.getAttribute("data-copy"));
    if (!target) return;
    var text = "value" in target ? target.value : target.textContent;
    var done = function () {
      var label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 2000);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () {});
    } else if (target.select) {
      target.select();
      if (document.execCommand("copy")) done();
    }
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (button) copy(button);
    var confirmer = event.target.closest("[data-confirm]");
    if (confirmer && !window.confirm(confirmer.getAttribute("data-confirm"))) event.preventDefault();
  });

  /* A page kept for the back button must not bring a revealed value or a credential back. */
  window.addEventListener("pagehide", function () { hideSecret(""); });

  document.querySelectorAll("[data-copy]").forEach(function (b) { b.hidden = false; });
  tick();
  setInterval(tick, 1000);
})();
