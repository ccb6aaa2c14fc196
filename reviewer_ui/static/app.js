// Live queue: the server sends "queue" events over SSE when any decision changes; the page then
// fetches its own rows again (with the same filters), so what is shown is always what this
// reviewer may see. Everything works without this script; it only saves a reload.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.EventSource) { return; }
  var pending = null;
  function refresh() {
    pending = null;
    var url = new URL(window.location.href);
    url.searchParams.set("partial", "1");
    fetch(url.toString(), { credentials: "same-origin", headers: { "accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        var seen = {};
        live.querySelectorAll("tr[data-decision]").forEach(function (tr) {
          seen[tr.getAttribute("data-decision")] = true;
        });
        live.innerHTML = html;
        live.querySelectorAll("tr[data-decision]").forEach(function (tr) {
          if (!seen[tr.getAttribute("data-decision")]) { tr.classList.add("fresh"); }
        });
      })
      .catch(function () { /* the next event tries again */ });
  }
  var source = new EventSource(live.getAttribute("data-live"));
  source.addEventListener("queue", function () {
    if (pending === null) { pending = window.setTimeout(refresh, 250); }
  });
  document.body.setAttribute("data-live", "on");
  source.onopen = function () { document.body.setAttribute("data-live", "open"); };
})();
