// Progressive enhancement for the Tenantry console. Every page works without this file.
(function () {
  "use strict";

  // Suggest a slug from the display name while the slug field is empty.
  function slugify(s) {
    return s.normalize("NFKD").replace(/[\u0300-\u036f]/g, "").toLowerCase()
      .replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 63).replace(/-+$/, "") || "tenant";
  }
  document.querySelectorAll("[data-slug-source]").forEach(function (name) {
    var slug = document.getElementById(name.getAttribute("data-slug-source"));
    if (!slug) return;
    name.addEventListener("input", function () { slug.placeholder = slugify(name.value); });
  });

  // Ask before destructive actions (the server still requires its own confirmation).
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (e) {
      if (!window.confirm(form.getAttribute("data-confirm"))) e.preventDefault();
    });
  });

  // Keep countdowns ticking.
  function span(secs) {
    var d = Math.floor(secs / 86400), h = Math.floor((secs % 86400) / 3600), m = Math.floor((secs % 3600) / 60);
    var p = function (n, u) { return n + " " + u + (n === 1 ? "" : "s"); };
    if (d > 0) return h > 0 ? p(d, "day") + " " + p(h, "hour") : p(d, "day");
    if (h > 0) return m > 0 ? p(h, "hour") + " " + p(m, "minute") : p(h, "hour");
    if (m > 0) return p(m, "minute");
    return "less than a minute";
  }
  var countdowns = document.querySelectorAll(".countdown[data-deadline]");
  if (countdowns.length) {
    setInterval(function () {
      countdowns.forEach(function (el) {
        var left = (Date.parse(el.getAttribute("data-deadline")) - Date.now()) / 1000;
        el.textContent = left > 0 ? "in " + span(Math.floor(left)) : "due now (shredded at the next run of shred_due_tenants)";
      });
    }, 30000);
  }

  // Copy a secret shown once (an API key, an invite link) to the clipboard.
  document.querySelectorAll("button[data-copy]").forEach(function (btn) {
    btn.hidden = false;
    btn.addEventListener("click", function () {
      var src = document.getElementById(btn.getAttribute("data-copy"));
      if (!src || !navigator.clipboard) return;
      navigator.clipboard.writeText(src.value || src.textContent).then(function () {
        btn.textContent = "Copied";
      });
    });
  });

  // In a tenant's console, notice a session that ended elsewhere (a revoke, a sign-out in
  // another tab, an expiry) and go to the sign-in page instead of staying on a stale page.
  var ping = document.body.getAttribute("data-session-ping");
  if (ping) {
    setInterval(function () {
      fetch(ping, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (res) {
          if (res.redirected || res.status === 401 || res.status === 403) {
            window.location.assign(res.redirected ? res.url : window.location.href);
          }
        })
        .catch(function () {});
    }, 15000);
  }
})();
