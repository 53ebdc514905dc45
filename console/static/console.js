// The console works without this script; it only adds confirmations, the
// auto-refresh of a PENDING delivery and a bulk replay's live progress.
(function () {
  "use strict";
  document.querySelectorAll("form[data-confirm]").forEach(function (f) {
    f.addEventListener("submit", function (e) {
      if (!window.confirm(f.dataset.confirm)) { e.preventDefault(); }
    });
  });

  var refresh = document.querySelector("[data-refresh]");
  if (refresh) {
    setTimeout(function () { window.location.reload(); }, 1000 * Number(refresh.dataset.refresh));
  }

  var progress = document.getElementById("replay-progress");
  if (!progress) { return; }
  var url = progress.dataset.statusUrl;
  function set(id, v) { document.getElementById(id).textContent = v; }
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
      .then(function (rep) {
        var bar = document.getElementById("bar");
        bar.max = Math.max(rep.matched, 1);
        bar.value = rep.state === "running" ? rep.replayed + rep.skipped : bar.max;
        set("state", rep.state); set("replayed", rep.replayed); set("skipped", rep.skipped); set("matched", rep.matched);
        set("replay-error", rep.error || "");
        document.getElementById("state").className = "status " + rep.state;
        if (rep.state === "running") { setTimeout(poll, 1000); }
      })
      .catch(function (e) { set("replay-error", "progress unavailable: " + e.message); setTimeout(poll, 3000); });
  }
  poll();
}());
