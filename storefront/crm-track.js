/* crm-track.js: storefront events for the CRM (POST /track); see storefront/README.md */
(function (w, d) {
  "use strict";
  var TYPES = ["page_viewed", "product_viewed", "product_added_to_cart", "cart_viewed", "checkout_started",
    "identify"];
  var MAX = 20, WAIT = 10000, AID = "crm_anonymous_id", cfg = null, queue = [], timer = null;

  function uuid() {
    if (w.crypto && crypto.randomUUID) return crypto.randomUUID();
    return "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".replace(/[xy]/g, function (c) {
      var r = Math.random() * 16 | 0;
      return (c === "x" ? r : (r & 3 | 8)).toString(16);
    });
  }

  function store(kind) { try { return w[kind]; } catch (e) { return null; } }

  function anonymousId() {
    var s = store("localStorage"), id = null;
    try { id = s && s.getItem(AID); } catch (e) { /* storage blocked: an id per page */ }
    if (!id) {
      id = uuid();
      try { if (s) s.setItem(AID, id); } catch (e) { /* ignore */ }
    }
    return id;
  }

  function utm() {
    var q = new URLSearchParams(w.location.search), u = {}, keys = ["source", "medium", "campaign", "term", "content"];
    for (var i = 0; i < keys.length; i++) if (q.get("utm_" + keys[i])) u[keys[i]] = q.get("utm_" + keys[i]);
    return u.source ? u : null; // the API needs a source whenever utm is given
  }

  function send(events) {
    var body = JSON.stringify({ write_key: cfg.writeKey, anonymous_id: anonymousId(), events: events });
    // text/plain is a "simple" CORS request: no preflight, and sendBeacon outlives the page.
    var blob = new Blob([body], { type: "text/plain;charset=UTF-8" });
    if (navigator.sendBeacon && navigator.sendBeacon(cfg.url, blob)) return;
    if (w.fetch) fetch(cfg.url, { method: "POST", body: body, keepalive: true,
      headers: { "Content-Type": "text/plain;charset=UTF-8" } }).catch(function () {});
  }

  function flush() {
    clearTimeout(timer); timer = null;
    while (cfg && queue.length) send(queue.splice(0, MAX));
  }

  function track(type, props) {
    if (!cfg) return;
    if (TYPES.indexOf(type) < 0) { if (w.console) console.warn("crm: unknown event type " + type); return; }
    var e = { type: type, event_id: uuid(), occurred_at: new Date().toISOString(), url: w.location.href };
    for (var k in props || {}) if (props[k] != null) e[k] = props[k];
    queue.push(e);
    if (queue.length >= MAX) flush(); else if (!timer) timer = setTimeout(flush, WAIT);
  }

  function identify(who) {
    who = who || {};
    track("identify", { email: who.email, phone: who.phone, consent: who.consent });
  }

  function linkShopifyCart(id) {
    // Cart attributes become the order's note_attributes, so the order webhook names this browser.
    var s = store("sessionStorage");
    try { if (!w.Shopify || !w.fetch || (s && s.getItem(AID) === id)) return; } catch (e) { return; }
    fetch("/cart/update.js", { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ attributes: { crm_anonymous_id: id } }) })
      .then(function (r) { try { if (r.ok && s) s.setItem(AID, id); } catch (e) { /* ignore */ } })
      .catch(function () {});
  }

  function init(options) {
    var base = String(options.endpoint || "").replace(/\/+$/, "");
    cfg = { url: /\/track$/.test(base) ? base : base + "/track", writeKey: options.writeKey };
    d.addEventListener("visibilitychange", function () { if (d.visibilityState === "hidden") flush(); });
    w.addEventListener("pagehide", flush);
    linkShopifyCart(anonymousId());
    if (options.pageView !== false) track("page_viewed", { referrer: d.referrer || null, utm: utm() });
  }

  w.crm = { init: init, track: track, identify: identify, flush: flush, anonymousId: anonymousId };
})(window, document);
