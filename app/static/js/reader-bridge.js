/*
 * Reservkort – kortläsarbryggan i webbläsaren.
 *
 * Connects to the local reader bridge (python -m reader_bridge) with
 * Server-Sent Events and fills the card serial into form fields marked
 * with the attribute data-card-serial.
 *
 * Configuration (either one; nothing configured = the script does nothing):
 *   <body data-reader-bridge-url="http://127.0.0.1:8765">
 *   <meta name="reader-bridge-url" content="http://127.0.0.1:8765">
 *
 * On "card-inserted" the focused data-card-serial field (else the one used
 * last, else the first enabled one) gets the serial, followed by "input"
 * and "change" events. A small <span class="reader-bridge-status"> next to
 * each field shows the state. When no bridge answers, the script closes the
 * connection, hides the status and tries again at most every 30 seconds.
 * It never listens to key events, so a keyboard-wedge scanner typing into
 * the same field keeps working.
 */
(function () {
  "use strict";

  var RETRY_MS = 30000;
  var FIELD_SELECTOR = "input[data-card-serial], textarea[data-card-serial]";
  var STATUS_CLASS = "reader-bridge-status";

  var source = null;
  var retryTimer = null;
  var lastField = null;
  var lastText = "";
  var lastKind = "";
  var lastStatus = null;

  function bridgeUrl() {
    var url = document.body && document.body.dataset ? document.body.dataset.readerBridgeUrl : "";
    if (!url) {
      var meta = document.querySelector('meta[name="reader-bridge-url"]');
      url = meta ? meta.getAttribute("content") : "";
    }
    url = (url || "").trim();
    return url ? url.replace(/\/+$/, "") : "";
  }

  function fields() {
    return Array.prototype.slice.call(document.querySelectorAll(FIELD_SELECTOR));
  }

  function usable(field) {
    return field && field.isConnected !== false && !field.disabled && !field.readOnly;
  }

  function statusFor(field) {
    var next = field.nextElementSibling;
    if (next && next.classList && next.classList.contains(STATUS_CLASS)) {
      return next;
    }
    var span = document.createElement("span");
    span.className = STATUS_CLASS;
    span.setAttribute("role", "status");
    span.setAttribute("aria-live", "polite");
    span.hidden = true;
    // discreet look, set through the CSSOM (allowed by a strict CSP)
    span.style.marginLeft = "0.5em";
    span.style.fontSize = "0.85em";
    span.style.color = "#666";
    field.insertAdjacentElement("afterend", span);
    return span;
  }

  function show(text, kind) {
    lastText = text;
    lastKind = kind || "";
    fields().forEach(function (field) {
      var span = statusFor(field);
      span.textContent = text;
      span.hidden = !text;
      var isError = lastKind === "error" || lastKind === "card-error";
      span.classList.toggle("is-error", isError);
      span.classList.toggle("is-ok", !isError);
      span.style.color = isError ? "#a94442" : "#666";
    });
  }

  function hide() {
    lastText = "";
    lastKind = "";
    document.querySelectorAll("." + STATUS_CLASS).forEach(function (span) {
      span.hidden = true;
      span.textContent = "";
    });
  }

  function parse(event) {
    try {
      return JSON.parse(event.data);
    } catch (e) {
      return null;
    }
  }

  function targetField() {
    var all = fields().filter(usable);
    var active = document.activeElement;
    if (active && all.indexOf(active) !== -1) {
      return active;
    }
    if (lastField && all.indexOf(lastField) !== -1) {
      return lastField;
    }
    return all[0] || null;
  }

  function fill(serial) {
    var field = targetField();
    if (!field) {
      return null;
    }
    field.value = serial;
    field.dispatchEvent(new Event("input", { bubbles: true }));
    field.dispatchEvent(new Event("change", { bubbles: true }));
    return field;
  }

  function describeStatus(data) {
    if (!data || !data.pcsc) {
      return ["Kortläsartjänsten (PC/SC) är inte igång", "error"];
    }
    var readers = data.readers || [];
    if (!readers.length) {
      return ["Ingen kortläsare ansluten", "error"];
    }
    return [readers.length === 1 ? "Kortläsare ansluten" : readers.length + " kortläsare anslutna", "ok"];
  }

  function onStatus(event) {
    lastStatus = parse(event);
    var d = describeStatus(lastStatus);
    // a fresh "Kort läst" or card error stays until the card is removed
    if (d[1] === "ok" && (lastKind === "read" || lastKind === "card-error")) {
      return;
    }
    show(d[0], d[1]);
  }

  function onInserted(event) {
    var data = parse(event);
    if (!data || !data.serial) {
      return;
    }
    fill(String(data.serial));
    show("Kort läst: " + data.serial, "read");
  }

  function onRemoved() {
    var d = describeStatus(lastStatus);
    show(d[0], d[1]);
  }

  function onCardError(event) {
    var data = parse(event);
    var message = (data && (data.message || data.message_en)) || "Kortet kunde inte läsas";
    show(message, "card-error");
  }

  function scheduleRetry() {
    if (retryTimer === null) {
      retryTimer = window.setTimeout(function () {
        retryTimer = null;
        connect();
      }, RETRY_MS);
    }
  }

  function disconnect() {
    if (source) {
      source.close();
      source = null;
    }
  }

  function connect() {
    var url = bridgeUrl();
    if (!url || source || typeof window.EventSource !== "function" || !fields().length) {
      if (url && !source && !fields().length) {
        scheduleRetry(); // fields may appear later (dynamic forms)
      }
      return;
    }
    var es;
    try {
      es = new window.EventSource(url + "/events");
    } catch (e) {
      scheduleRetry();
      return;
    }
    source = es;
    es.addEventListener("status", onStatus);
    es.addEventListener("card-inserted", onInserted);
    es.addEventListener("card-removed", onRemoved);
    es.addEventListener("error", function (event) {
      if (event.data !== undefined) {
        onCardError(event); // the bridge's own "error" event carries data
        return;
      }
      // connection error: no bridge on this workstation (or it stopped)
      if (source === es) {
        disconnect();
        hide();
        scheduleRetry();
      }
    });
  }

  function init() {
    document.addEventListener(
      "focusin",
      function (event) {
        var t = event.target;
        if (t && t.matches && t.matches(FIELD_SELECTOR)) {
          lastField = t;
          if (lastText && source) {
            var span = statusFor(t);
            span.textContent = lastText;
            span.hidden = false;
          }
        }
      },
      true
    );
    window.addEventListener("pagehide", disconnect);
    window.addEventListener("pageshow", function (event) {
      if (event.persisted) {
        connect();
      }
    });
    connect();
  }

  window.ReservkortReaderBridge = { connect: connect, disconnect: disconnect, url: bridgeUrl };

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
