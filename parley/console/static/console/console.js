/* Parley console: the page's live link, countdowns and keys (SPEC C-4, C-6).
 *
 * One EventSource per tab reads the page's stream (main[data-stream]). Each
 * "patch" event carries fragments rendered by the server, each with an id;
 * a fragment replaces the element of the same id. Fragments are queued by id
 * and applied once per animation frame, so a burst of patches costs one DOM
 * update with the latest of each (and none while the tab is hidden).
 *
 * Reconnection keeps the position. The browser reconnects by itself after a
 * network error and sends Last-Event-ID; when it gives up (the server or a
 * proxy answered an error) this script opens a new EventSource with
 * ?after=<the last id it saw>, so nothing is missed either way. It asks
 * /console/session/ first, to tell a logout (401/403: stop, offer to log in)
 * from an outage (retry with a backoff).
 *
 * Countdowns ([data-due], milliseconds since the epoch) run on the server's
 * clock: every message carries the server's time, and the page keeps the
 * offset between that and the browser's clock.
 *
 * This is plain EventSource rather than htmx's SSE extension because that
 * extension reconnects with a new EventSource on the same URL, which sends no
 * Last-Event-ID: the events of the outage would be lost. htmx still drives
 * links, filters and actions (hx-boost, hx-get, hx-post).
 */
(function () {
  "use strict";

  const RETRY_MIN_MS = 1000;
  const RETRY_MAX_MS = 15000;
  const STATES = {
    live: "Live",
    connecting: "Connecting…",
    reconnecting: "Reconnecting…",
    offline: "Offline, retrying",
    "signed-out": "Signed out",
  };

  let source = null;        // the EventSource
  let streamUrl = "";       // the page's stream, without position
  let lastId = "";          // the last event id seen: where a new EventSource resumes
  let offset = 0;           // server clock minus browser clock, in ms
  let state = "connecting";
  let retryMs = RETRY_MIN_MS;
  let retryTimer = 0;
  let lastMessageAt = performance.now();
  let main = null;

  // --- link state -------------------------------------------------------------

  function setState(next) {
    state = next;
    const el = document.getElementById("link-state");
    if (!el) return;
    el.dataset.state = next;
    if (next === "signed-out") {
      const login = new URL(main.dataset.loginUrl, location.href);
      login.searchParams.set("next", location.pathname + location.search);
      el.replaceChildren(STATES[next] + ": ");
      const link = document.createElement("a");
      link.href = login.pathname + login.search;
      link.textContent = "log in";
      link.setAttribute("hx-boost", "false");
      el.append(link);
    } else {
      el.textContent = STATES[next];
    }
  }

  // --- the stream -------------------------------------------------------------

  function disconnect() {
    clearTimeout(retryTimer);
    if (source) source.close();
    source = null;
  }

  function connect() {
    disconnect();
    const retention = Number(main.dataset.retentionSeconds || 0) * 1000;
    if (lastId && retention && performance.now() - lastMessageAt > retention) {
      // Away longer than the outbox keeps events: replaying could miss some.
      location.reload();
      return;
    }
    const url = new URL(streamUrl, location.href);
    if (lastId) url.searchParams.set("after", lastId);
    source = new EventSource(url.pathname + url.search);
    source.onopen = function () {
      retryMs = RETRY_MIN_MS;
      setState("live");
    };
    source.onerror = function () {
      if (!source) return;
      if (source.readyState === EventSource.CONNECTING) {
        setState("reconnecting"); // the browser retries with Last-Event-ID
        return;
      }
      disconnect();
      checkSessionThenRetry();
    };
    source.addEventListener("patch", function (event) {
      received(event);
      queuePatch(event.data);
    });
    source.addEventListener("heartbeat", function (event) {
      received(event);
      const now = Number(event.data);
      if (now) offset = now - Date.now();
    });
  }

  function received(event) {
    if (event.lastEventId) lastId = event.lastEventId;
    lastMessageAt = performance.now();
    if (state !== "live") setState("live");
  }

  function checkSessionThenRetry() {
    fetch(main.dataset.sessionUrl, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (response.status === 401 || response.status === 403) {
          setState("signed-out");
        } else {
          scheduleRetry();
        }
      })
      .catch(scheduleRetry);
  }

  function scheduleRetry() {
    setState("offline");
    clearTimeout(retryTimer);
    const wait = retryMs * (0.8 + Math.random() * 0.4);
    retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
    retryTimer = setTimeout(connect, wait);
  }

  // A connection that went quiet (a proxy or NAT dropped it without a word):
  // no heartbeat for 2.5 periods means it is gone.
  setInterval(function () {
    if (!main || !source || state !== "live") return;
    const heartbeat = Number(main.dataset.heartbeatSeconds || 15) * 1000;
    if (performance.now() - lastMessageAt > 2.5 * heartbeat) {
      setState("reconnecting");
      connect();
    }
  }, 5000);

  // --- patches ----------------------------------------------------------------

  const pending = new Map();
  let scheduled = false;

  function queuePatch(html) {
    // A template's content is inert: nothing in it loads or runs.
    const template = document.createElement("template");
    template.innerHTML = html;
    const root = template.content.firstElementChild;
    if (!root) return;
    const now = Number(root.dataset.now);
    if (now) offset = now - Date.now();
    for (const fragment of Array.from(root.children)) {
      if (fragment.id) pending.set(fragment.id, fragment);
    }
    if (!scheduled) {
      scheduled = true;
      requestAnimationFrame(flush);
    }
  }

  function flush() {
    scheduled = false;
    const focused = focusedItem();
    for (const [id, fragment] of pending) {
      const current = document.getElementById(id);
      if (!current) continue;
      const node = document.importNode(fragment, true);
      current.replaceWith(node);
      if (window.htmx) window.htmx.process(node);
    }
    pending.clear();
    if (focused) refocus(focused);
    tickCountdowns();
    document.dispatchEvent(new CustomEvent("console:patched"));
  }

  // --- countdowns on the server's clock ------------------------------------------

  function secondsText(seconds) {
    if (seconds <= 0) return "due now";
    if (seconds < 60) return "in " + seconds.toFixed(1) + " s";
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return "in " + minutes + ":" + String(Math.floor(seconds % 60)).padStart(2, "0") + " min";
    return "in " + Math.floor(minutes / 60) + " h " + (minutes % 60) + " min";
  }

  function tickCountdowns() {
    const now = Date.now() + offset;
    for (const el of document.querySelectorAll("[data-due]")) {
      const due = Number(el.dataset.due);
      if (due) el.textContent = secondsText((due - now) / 1000);
    }
  }
  setInterval(tickCountdowns, 100);

  // --- keys: j / k move, Enter opens, / searches ------------------------------------

  function navLinks() {
    return Array.from(document.querySelectorAll("[data-nav-list] [data-nav-link]"));
  }

  function focusedItem() {
    const active = document.activeElement;
    const item = active && active.closest ? active.closest("[data-nav-item]") : null;
    return item ? item.dataset.navItem : "";
  }

  function refocus(key) {
    for (const item of document.querySelectorAll("[data-nav-item]")) {
      if (item.dataset.navItem === key) {
        const link = item.querySelector("[data-nav-link]");
        if (link) link.focus({ preventScroll: true });
        return;
      }
    }
  }

  function move(step) {
    const links = navLinks();
    if (!links.length) return;
    const at = links.indexOf(document.activeElement);
    const next = at < 0 ? (step > 0 ? 0 : links.length - 1)
      : Math.min(links.length - 1, Math.max(0, at + step));
    links[next].focus();
    links[next].scrollIntoView({ block: "nearest" });
  }

  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target.closest && target.closest("input, textarea, select, [contenteditable]")) {
      if (event.key === "Escape") target.blur();
      return;
    }
    if (event.key === "j" || event.key === "k") {
      move(event.key === "j" ? 1 : -1);
      event.preventDefault();
    } else if (event.key === "/") {
      const search = document.getElementById("q");
      if (search) {
        search.focus();
        event.preventDefault();
      }
    }
  });

  // --- page changes (first load, htmx navigation, history) --------------------------

  function sync() {
    main = document.getElementById("main");
    const url = main ? main.dataset.stream : "";
    if (!url) {
      disconnect();
      return;
    }
    setState(state);
    if (url === streamUrl && source) return;
    if (url !== streamUrl) {
      // Another page: it was rendered at its own position.
      streamUrl = url;
      lastId = main.dataset.after || "";
      const now = Number(main.dataset.serverNow);
      if (now) offset = now - Date.now();
    }
    lastMessageAt = performance.now();
    setState("connecting");
    connect();
  }

  document.addEventListener("htmx:afterSettle", sync);
  document.addEventListener("htmx:historyRestore", sync);
  window.addEventListener("pagehide", disconnect);
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) sync(); // back from the browser's page cache: resume where it was
  });
  sync();
  tickCountdowns();
})();
