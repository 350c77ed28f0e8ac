/* VTmarketing settings page: plain JavaScript, no build step.
 *
 * AppBridge (the Saleor Dashboard's postMessage protocol), as Saleor's app SDK does it:
 * - `saleorApiUrl` and `id` come from the query string; messages are accepted only from the dashboard's origin
 *   (`document.referrer`'s origin) and from the parent window;
 * - `notifyReady` is sent ONCE at start-up. The dashboard answers every notifyReady with a handshake, so sending it
 *   from the handshake handler would loop;
 * - the token comes with `handshake` (possibly twice: the dashboard also sends one on iframe load, and may load the
 *   page twice) and is replaced by `tokenRefresh`; `theme` switches light/dark; `localeChanged` gives the
 *   merchant's language, used for every date (the time zone is the browser's);
 * - successful actions are confirmed with `notification` actions to window.parent (target "*", as the SDK does: the
 *   dashboard checks the sender's origin, and the payload holds nothing secret). Errors are shown once, on the page,
 *   where they belong (next to the field, on the channel's card, or at the top), never again as a toast.
 *
 * The delivery log is live: one small query (deliveries + stored channel state, no call to Saleor) every
 * `data-poll-ms` while the tab is visible, ten times slower while hidden, backing off after errors and never
 * stopping; rows that did not change are kept as they are (an attempts list the merchant opened stays open).
 *
 * Everything shown is built with textContent (never innerHTML), so text from Saleor or VTmarketing cannot inject markup.
 */
(function () {
  "use strict";

  var ROOT = document.documentElement;
  var GRAPHQL_PATH = document.querySelector('meta[name="graphql-path"]').getAttribute("content");
  var HANDSHAKE_TIMEOUT_MS = 5000;
  var POLL_MS = positiveNumber(ROOT.getAttribute("data-poll-ms"), 3000);
  var HIDDEN_POLL_MS = POLL_MS * 10;
  var MAX_BACKOFF_MS = Math.max(POLL_MS, Math.min(60000, POLL_MS * 20));
  var PAGE_SIZE = 25;
  var MAX_POLL_SIZE = 100;
  var TEST_EMAIL = "test@saleor-vtmarketing.invalid";

  var params = new URLSearchParams(window.location.search);
  var state = {
    saleorApiUrl: params.get("saleorApiUrl"),
    appId: params.get("id"),
    dashboardOrigin: null,
    token: null,
    started: false,
    handshakeTimer: null,
    options: null,
    retentionDays: null,
    cards: new Map(), // slug -> card
    channelNames: new Map(), // slug -> name, as Saleor gives it
    filters: { status: "", channel: "", search: "" },
    deliveries: [],
    rows: new Map(), // delivery id -> { node, signature }: unchanged rows are kept, not rebuilt
    hasMore: false,
    endCursor: null,
    logGeneration: 0, // bumped when the filters change: an answer for older filters is dropped
    poll: { started: false, timer: null, inFlight: null, again: false, failures: 0, count: 0 },
  };

  // --- GraphQL documents --------------------------------------------------------------------------------------

  var COUNTS = "deliveryCounts { pending delivering retrying delivered failed skipped total }";
  var SETTINGS_FIELDS = "enabled apiKeyHint itemId orderId configured keyStatus keyStatusMessage keyStatusAt";
  var CHANNEL_FIELDS = "id slug name currencyCode isActive existsInSaleor " + SETTINGS_FIELDS + " " + COUNTS;
  var DELIVERY_FIELDS =
    "id orderNumber orderId channel channelName status statusLabel reason source receivedAt resentAt nextAttemptAt " +
    "finishedAt expiresAt payloadWarning canRetry attempts { startedAt durationMs target httpStatus outcome excerpt }";
  var DELIVERIES_PAGE =
    "deliveries(status: $status, channel: $channel, search: $search, first: $first, after: $after) { items { " +
    DELIVERY_FIELDS + " } hasMore endCursor }";
  var DELIVERY_VARIABLES = "$status: String, $channel: String, $search: String, $first: Int, $after: String";
  var OVERVIEW_QUERY =
    "query Overview { installation { saleorApiUrl status statusReason lastReconcileAt lastReconcileChecked " +
    "lastReconcileRecovered lastReconcileError retentionDays } settingsOptions { itemIdChoices { value label } " +
    "orderIdChoices { value label } deliveryStatuses { value label } } channels { " + CHANNEL_FIELDS + " } " +
    "channelsError { code message } }";
  var DELIVERIES_QUERY = "query Deliveries(" + DELIVERY_VARIABLES + ") { " + DELIVERIES_PAGE + " }";
  // What the live log asks for: the app's own database only (no call to Saleor), one request per poll.
  var POLL_QUERY =
    "query Poll(" + DELIVERY_VARIABLES + ") { " + DELIVERIES_PAGE + " storedChannels { slug name settings { channel " +
    SETTINGS_FIELDS + " } " + COUNTS + " } }";
  var UPDATE_MUTATION =
    "mutation Update($input: ChannelSettingsInput!) { updateChannelSettings(input: $input) { ok changed " +
    "settings { channel " + SETTINGS_FIELDS + " } errors { field code message } } }";
  var TEST_MUTATION =
    "mutation Test($channel: String!, $apiKey: String, $currency: String) { sendTestEvent(channel: $channel, " +
    "apiKey: $apiKey, currency: $currency) { ok httpStatus message code orderId settings { channel " + SETTINGS_FIELDS +
    " } errors { field code message } } }";
  var RETRY_MUTATION =
    "mutation Retry($id: ID!) { retryDelivery(id: $id) { ok delivery { " + DELIVERY_FIELDS + " } " +
    "errors { code message } } }";
  var RETRY_ALL_MUTATION =
    "mutation RetryAll($channel: String) { retryFailedDeliveries(channel: $channel) { ok count message } }";

  // --- small helpers ------------------------------------------------------------------------------------------

  function $(id) {
    return document.getElementById(id);
  }

  function positiveNumber(text, fallback) {
    var value = Number(text);
    return isFinite(value) && value > 0 ? value : fallback;
  }

  function el(tag, props, children) {
    var node = document.createElement(tag);
    Object.keys(props || {}).forEach(function (key) {
      var value = props[key];
      if (value === null || value === undefined || value === false) return;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.indexOf("on") === 0) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    });
    [].concat(children || []).forEach(function (child) {
      if (child !== null && child !== undefined && child !== false) node.append(child);
    });
    return node;
  }

  function plural(n, one, many) {
    return n + " " + (n === 1 ? one : many);
  }

  function newActionId() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") return window.crypto.randomUUID();
    return "a-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2);
  }

  function announce(text) {
    var live = $("live");
    live.textContent = "";
    window.setTimeout(function () {
      live.textContent = text;
    }, 50);
  }

  // --- one time zone everywhere: the browser's, in the dashboard's language -----------------------------------

  var TIME_ZONE = (function () {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch (e) {
      return "";
    }
  })();
  var locale = supportedLocale(params.get("locale")) || supportedLocale(navigator.language) || undefined;
  var dateFormat = makeDateFormat(locale);
  var clockFormat = makeClockFormat(locale);

  function supportedLocale(value) {
    if (typeof value !== "string" || !value) return null;
    var tag = value.replace(/_/g, "-");
    try {
      return Intl.DateTimeFormat.supportedLocalesOf([tag]).length ? tag : null;
    } catch (e) {
      return null;
    }
  }

  function makeDateFormat(tag) {
    return new Intl.DateTimeFormat(tag, { dateStyle: "medium", timeStyle: "medium" });
  }

  function makeClockFormat(tag) {
    return new Intl.DateTimeFormat(tag, { timeStyle: "medium" });
  }

  function formatDate(iso) {
    if (!iso) return "";
    var date = new Date(iso);
    return isNaN(date.getTime()) ? iso : dateFormat.format(date);
  }

  function timeEl(iso) {
    return el("time", { datetime: iso, title: TIME_ZONE || null, text: formatDate(iso) });
  }

  function setLocale(value) {
    var tag = supportedLocale(value);
    if (!tag || tag === locale) return;
    locale = tag;
    dateFormat = makeDateFormat(tag);
    clockFormat = makeClockFormat(tag);
    ROOT.setAttribute("data-locale", tag);
    // Re-render every date in place: nothing else on the page changes (an open attempts list stays open).
    document.querySelectorAll("time[datetime]").forEach(function (node) {
      node.textContent = formatDate(node.getAttribute("datetime"));
    });
  }

  // --- AppBridge ----------------------------------------------------------------------------------------------

  function inFrame() {
    try {
      return window.parent !== window;
    } catch (e) {
      return true;
    }
  }

  function postAction(type, payload) {
    if (!inFrame()) return;
    var body = Object.assign({}, payload || {}, { actionId: newActionId() });
    window.parent.postMessage({ type: type, payload: body }, "*");
  }

  function notify(status, title, text) {
    postAction("notification", { status: status, title: title, text: text || "" });
  }

  function referrerOrigin() {
    try {
      return document.referrer ? new URL(document.referrer).origin : null;
    } catch (e) {
      return null;
    }
  }

  function onMessage(event) {
    if (!state.dashboardOrigin || event.origin !== state.dashboardOrigin) return;
    if (event.source !== window.parent) return;
    var data = event.data;
    if (!data || typeof data !== "object" || typeof data.type !== "string") return;
    var payload = data.payload && typeof data.payload === "object" ? data.payload : {};
    if (data.type === "handshake" || data.type === "tokenRefresh") {
      // Never answer a handshake with notifyReady: the dashboard replies to each one with another handshake.
      if (typeof payload.token === "string" && payload.token) receiveToken(payload.token);
    } else if (data.type === "theme") {
      applyTheme(payload.theme);
    } else if (data.type === "localeChanged") {
      setLocale(payload.locale);
    }
    // response, redirect: nothing to do.
  }

  function receiveToken(token) {
    var changed = token !== state.token;
    state.token = token;
    if (!state.started) {
      state.started = true;
      window.clearTimeout(state.handshakeTimer);
      showMain();
      loadAll();
    } else if (changed && state.poll.started && state.poll.failures) {
      pollNow(); // a fresh token after failures (an expired one): catch up at once
    }
  }

  function applyTheme(theme) {
    if (theme !== "dark" && theme !== "light") return;
    ROOT.setAttribute("data-theme", theme);
  }

  // --- views --------------------------------------------------------------------------------------------------

  function showOutside(reason) {
    $("connecting").hidden = true;
    $("main").hidden = true;
    $("outside").hidden = false;
    $("outside-reason").textContent = reason;
  }

  function showMain() {
    $("connecting").hidden = true;
    $("outside").hidden = true;
    $("main").hidden = false;
  }

  function showAlert(message) {
    var alert = $("alert");
    alert.textContent = message;
    alert.hidden = !message;
  }

  // --- talking to the app's API -------------------------------------------------------------------------------

  function ApiError(code, message, status) {
    this.code = code;
    this.message = message;
    this.status = status;
  }

  function explain(status, error) {
    if (status === 403) return "You need the Manage apps permission in Saleor to change these settings.";
    if (error && error.code === "TOKEN_EXPIRED") return "The dashboard session has expired.";
    if (error && error.message) return error.message;
    return "The app answered HTTP " + status + ".";
  }

  function gql(query, variables) {
    if (!state.token) return Promise.reject(new ApiError("NO_TOKEN", "Waiting for the Saleor Dashboard.", 0));
    return window
      .fetch(GRAPHQL_PATH, {
        method: "POST",
        credentials: "omit",
        cache: "no-store",
        headers: {
          "Content-Type": "application/json",
          Accept: "application/json",
          "Authorization-Bearer": state.token,
          "Saleor-Api-Url": state.saleorApiUrl,
        },
        body: JSON.stringify({ query: query, variables: variables || {} }),
      })
      .catch(function () {
        throw new ApiError("NETWORK", "The app could not be reached. Check your connection and try again.", 0);
      })
      .then(function (response) {
        return response
          .json()
          .catch(function () {
            return null;
          })
          .then(function (body) {
            if (!response.ok) {
              var error = body && body.error;
              throw new ApiError((error && error.code) || "HTTP_" + response.status, explain(response.status, error), response.status);
            }
            if (!body) throw new ApiError("BAD_ANSWER", "The app sent an unreadable answer.", response.status);
            if (body.errors && body.errors.length) {
              var first = body.errors[0];
              throw new ApiError((first.extensions && first.extensions.code) || "GRAPHQL", first.message, response.status);
            }
            return body.data;
          });
      });
  }

  // --- loading ------------------------------------------------------------------------------------------------

  function loadAll() {
    showAlert("");
    return gql(OVERVIEW_QUERY)
      .then(function (data) {
        state.options = data.settingsOptions;
        state.retentionDays = data.installation.retentionDays;
        data.channels.forEach(function (ch) {
          state.channelNames.set(ch.slug, ch.name);
        });
        renderInstallation(data.installation);
        renderFilterOptions(data.settingsOptions, data.channels);
        renderChannels(data.channels, data.channelsError);
        return loadDeliveries("replace");
      })
      .then(startPolling)
      .catch(function (error) {
        $("channels-loading").hidden = true;
        showAlert(error.message); // once, at the top: nothing else on the page could load
      });
  }

  function renderInstallation(inst) {
    var status = $("install-status");
    status.textContent = "";
    status.append("Connected to " + hostOf(inst.saleorApiUrl) + ".");
    if (inst.lastReconcileAt) {
      status.append(
        " Last check for missed orders ",
        timeEl(inst.lastReconcileAt),
        ": " + plural(inst.lastReconcileChecked, "order", "orders") + " checked, " + inst.lastReconcileRecovered + " recovered."
      );
    }
    if (inst.lastReconcileError) status.append(" Last check failed: " + inst.lastReconcileError);
    if (inst.status !== "active") {
      showAlert("The app is marked " + inst.status + (inst.statusReason ? ": " + inst.statusReason : "") + ".");
    }
    $("log-retention").textContent =
      "Newest first. Finished deliveries are kept for " + plural(inst.retentionDays, "day", "days") + "." +
      (TIME_ZONE ? " Times are in your time zone (" + TIME_ZONE + ")." : "");
  }

  function hostOf(url) {
    try {
      return new URL(url).host;
    } catch (e) {
      return url;
    }
  }

  function channelLabel(slug, name) {
    return !name || name === slug ? slug : name + " (" + slug + ")";
  }

  function renderFilterOptions(options, channels) {
    var status = $("filter-status");
    options.deliveryStatuses.forEach(function (choice) {
      status.append(el("option", { value: choice.value, text: choice.label }));
    });
    var channel = $("filter-channel");
    channels.forEach(function (ch) {
      channel.append(el("option", { value: ch.slug, text: channelLabel(ch.slug, ch.name) }));
    });
  }

  // --- channels -----------------------------------------------------------------------------------------------

  function renderChannels(channels, channelsError) {
    $("channels-loading").hidden = true;
    var notice = $("channels-error");
    notice.hidden = !channelsError;
    notice.textContent = channelsError ? channelsError.message : "";
    var list = $("channels");
    list.textContent = "";
    state.cards.clear();
    if (!channels.length) {
      list.append(el("p", { class: "empty", text: "This Saleor has no channels yet." }));
    }
    channels.forEach(function (ch, index) {
      var card = buildCard(ch, index);
      state.cards.set(ch.slug, card);
      list.append(card.root);
    });
  }

  function choiceOptions(choices, selected) {
    return choices.map(function (choice) {
      return el("option", { value: choice.value, selected: choice.value === selected, text: choice.label });
    });
  }

  function buildCard(ch, index) {
    var prefix = "ch" + index;
    var card = { slug: ch.slug, name: ch.name, currency: ch.currencyCode, errors: {}, saved: {}, busy: false };

    var badges = [];
    if (ch.existsInSaleor === false) badges.push(el("span", { class: "badge badge-warning", text: "Removed from Saleor" }));
    if (ch.isActive === false) badges.push(el("span", { class: "badge", text: "Inactive in Saleor" }));
    card.configuredBadge = el("span", { class: "badge key-badge" });

    // The switch saves at once (it is not part of the form below), and cannot be turned on without a key.
    card.enabled = el("input", {
      type: "checkbox",
      role: "switch",
      id: prefix + "-enabled",
      "aria-describedby": prefix + "-enabled-hint",
    });
    card.enabledHint = el("p", { class: "hint switch-hint", id: prefix + "-enabled-hint" });
    card.enabled.addEventListener("change", function () {
      toggleSending(card);
    });
    var header = el("div", { class: "card-header" }, [
      el("div", {}, [
        el("div", { class: "card-title" }, [el("h3", { id: prefix + "-title", text: ch.name })].concat(badges, [card.configuredBadge])),
        el("p", { class: "card-subtitle", text: [ch.slug, ch.currencyCode].filter(Boolean).join(" · ") }),
      ]),
      el("div", { class: "switch-group" }, [
        el("label", { class: "switch", for: prefix + "-enabled" }, [card.enabled, el("span", { text: "Send orders to VTmarketing" })]),
        card.enabledHint,
      ]),
    ]);

    card.apiKey = el("input", {
      type: "password",
      id: prefix + "-apiKey",
      name: "apiKey",
      autocomplete: "off",
      spellcheck: "false",
      "aria-describedby": prefix + "-apiKey-status " + prefix + "-apiKey-hint " + prefix + "-apiKey-error",
    });
    card.keyStatus = el("p", { class: "key-status", id: prefix + "-apiKey-status", hidden: true });
    card.apiKeyHint = el("p", { class: "hint", id: prefix + "-apiKey-hint" });
    card.errors.apiKey = el("p", { class: "field-error", id: prefix + "-apiKey-error", hidden: true });

    card.itemId = el(
      "select",
      { id: prefix + "-itemId", name: "itemId", "aria-describedby": prefix + "-itemId-hint " + prefix + "-itemId-error" },
      choiceOptions(state.options.itemIdChoices, ch.itemId)
    );
    card.errors.itemId = el("p", { class: "field-error", id: prefix + "-itemId-error", hidden: true });
    card.orderId = el(
      "select",
      { id: prefix + "-orderId", name: "orderId", "aria-describedby": prefix + "-orderId-hint " + prefix + "-orderId-error" },
      choiceOptions(state.options.orderIdChoices, ch.orderId)
    );
    card.errors.orderId = el("p", { class: "field-error", id: prefix + "-orderId-error", hidden: true });
    card.errors.channel = el("p", { class: "field-error", hidden: true });

    card.save = el("button", { type: "submit", class: "btn btn-primary", text: "Save", disabled: true });
    card.test = el("button", { type: "button", class: "btn btn-secondary", text: "Send test event…", "aria-expanded": "false" });
    card.dirtyNote = el("span", { class: "dirty-note", text: "Unsaved changes", hidden: true });
    card.status = el("p", { class: "card-status", role: "status", "aria-live": "polite" });

    // Said before anything is sent: a test event is real data in the VTmarketing account.
    card.testText = el("p", { class: "test-confirm-text", id: prefix + "-test-text" });
    card.testSend = el("button", { type: "button", class: "btn btn-primary btn-small", text: "Send the test event" });
    card.testCancel = el("button", { type: "button", class: "btn btn-secondary btn-small", text: "Cancel" });
    card.testConfirm = el(
      "div",
      { class: "test-confirm", role: "group", "aria-labelledby": prefix + "-test-text", hidden: true },
      [card.testText, el("div", { class: "button-row" }, [card.testSend, card.testCancel])]
    );

    var form = el("form", { class: "card-body", novalidate: true, "aria-labelledby": prefix + "-title" }, [
      el("div", { class: "channel-fields" }, [
        el("div", { class: "field" }, [
          el("label", { for: prefix + "-apiKey", text: "API key" }),
          card.apiKey,
          card.keyStatus,
          card.apiKeyHint,
          card.errors.apiKey,
        ]),
        el("div", { class: "field" }, [
          el("label", { for: prefix + "-itemId", text: "Item ID sent for each line" }),
          card.itemId,
          el("p", { class: "hint", id: prefix + "-itemId-hint", text: "Must match the IDs in your VTmarketing product feed." }),
          card.errors.itemId,
        ]),
        el("div", { class: "field" }, [
          el("label", { for: prefix + "-orderId", text: "Order ID sent" }),
          card.orderId,
          el("p", { class: "hint", id: prefix + "-orderId-hint", text: "How the order is named in VTmarketing." }),
          card.errors.orderId,
        ]),
      ]),
      card.errors.channel,
      el("div", { class: "card-actions" }, [card.save, card.test, card.dirtyNote, card.status]),
      card.testConfirm,
    ]);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      saveChannel(card);
    });
    [card.apiKey, card.itemId, card.orderId].forEach(function (input) {
      input.addEventListener("input", function () {
        updateDirty(card);
      });
      input.addEventListener("change", function () {
        updateDirty(card);
      });
    });
    card.test.addEventListener("click", function () {
      openTestConfirm(card);
    });
    card.testCancel.addEventListener("click", function () {
      closeTestConfirm(card);
      card.test.focus();
    });
    card.testSend.addEventListener("click", function () {
      sendTest(card);
    });

    card.counts = el("div", { class: "card-footer", "aria-label": "Deliveries of " + ch.name });
    card.root = el("article", { class: "card channel", "data-channel": ch.slug, "aria-labelledby": prefix + "-title" }, [
      header,
      form,
      card.counts,
    ]);
    // Other sections of a channel's card (e.g. a product feed) mount here, after the card is built.
    applySettings(card, ch, { form: true });
    renderCounts(card, ch.deliveryCounts);
    // The channel's product feed lives in feed.js: it adds its own section to the card.
    if (window.VTMFeed) card.feed = window.VTMFeed.mount(card.root, ch, { gql: gql, notify: notify, el: el });
    return card;
  }

  function isDirty(card) {
    return (
      card.apiKey.value !== "" || card.itemId.value !== card.saved.itemId || card.orderId.value !== card.saved.orderId
    );
  }

  function updateDirty(card) {
    var dirty = isDirty(card);
    card.root.toggleAttribute("data-dirty", dirty);
    card.dirtyNote.hidden = !dirty;
    card.save.disabled = !dirty || card.busy;
  }

  /* `settings` as stored. `form: true` also resets the form to it (after a save, or on a poll while the merchant
   * is not editing); otherwise only what the merchant cannot edit here is updated (badge, key status, switch). */
  function applySettings(card, settings, how) {
    card.configured = settings.configured;
    if (how.form || !isDirty(card)) {
      card.saved = { itemId: settings.itemId, orderId: settings.orderId };
      card.itemId.value = settings.itemId;
      card.orderId.value = settings.orderId;
    }
    renderKey(card, settings);
    if (!card.toggling) {
      card.enabled.checked = settings.enabled;
      card.enabled.disabled = !settings.configured;
    }
    card.enabledHint.textContent = settings.configured ? "" : "Save an API key to turn sending on.";
    card.enabledHint.hidden = settings.configured;
    updateDirty(card);
  }

  var KEY_BADGES = {
    none: ["No key", "badge key-badge badge-warning"],
    saved: ["Key saved", "badge key-badge"],
    accepted: ["Key works", "badge key-badge badge-delivered"],
    refused: ["Key refused", "badge key-badge badge-failed"],
  };

  function renderKey(card, settings) {
    var kind = !settings.configured ? "none" : KEY_BADGES[settings.keyStatus] ? settings.keyStatus : "saved";
    var shown = kind + "|" + (settings.keyStatusAt || "");
    if (card.keyShown && card.keyShown !== shown && card.statusFrom === "test") setCardStatus(card, "", "");
    card.keyShown = shown; // a test's result line never contradicts what is known of the key since
    card.root.setAttribute("data-key-status", kind);
    card.configuredBadge.textContent = KEY_BADGES[kind][0];
    card.configuredBadge.className = KEY_BADGES[kind][1];
    card.apiKey.placeholder = settings.configured
      ? "Saved key " + (settings.apiKeyHint || "") + " (paste a new key to replace it)"
      : "Paste the VTmarketing API key";
    card.apiKeyHint.textContent = settings.configured
      ? "A key ending in " + (settings.apiKeyHint || "…") + " is saved. Leave empty to keep it."
      : "No key yet: orders of this channel are not sent until you save one.";

    var note = card.keyStatus;
    note.textContent = "";
    note.hidden = kind !== "refused" && kind !== "accepted";
    note.className = "key-status is-" + kind;
    if (kind === "refused") {
      note.append(
        settings.keyStatusMessage || "VTmarketing refused this key.",
        " (",
        timeEl(settings.keyStatusAt),
        ") Paste a valid key and save, then resend the failed orders."
      );
    } else if (kind === "accepted") {
      note.append(settings.keyStatusMessage || "VTmarketing accepted this key.", " (", timeEl(settings.keyStatusAt), ")");
    }
  }

  function renderCounts(card, counts) {
    card.counts.textContent = "";
    if (!counts || !counts.total) {
      card.counts.append(el("span", { text: "No deliveries yet." }));
      return;
    }
    [
      ["delivered", "delivered"],
      ["failed", "failed"],
      ["retrying", "retrying"],
      ["pending", "waiting"],
      ["delivering", "sending"],
      ["skipped", "skipped"],
    ].forEach(function (pair) {
      var n = counts[pair[0]];
      if (!n && pair[0] !== "delivered" && pair[0] !== "failed") return;
      var cls = "count count-" + pair[0] + (n ? " is-nonzero" : "");
      card.counts.append(el("span", { class: cls }, [el("strong", { text: String(n) }), " " + pair[1]]));
    });
  }

  function clearFieldErrors(card) {
    Object.keys(card.errors).forEach(function (field) {
      card.errors[field].hidden = true;
      card.errors[field].textContent = "";
      var input = card[field];
      if (input && input.removeAttribute) input.removeAttribute("aria-invalid");
    });
  }

  function showFieldErrors(card, errors) {
    var focused = false;
    errors.forEach(function (error) {
      var field = card.errors[error.field] ? error.field : "channel";
      card.errors[field].textContent = error.message;
      card.errors[field].hidden = false;
      var input = card[field];
      if (input && input.setAttribute && field !== "channel") {
        input.setAttribute("aria-invalid", "true");
        if (!focused) {
          input.focus();
          focused = true;
        }
      }
    });
  }

  function setCardStatus(card, kind, text, from) {
    card.status.className = "card-status" + (kind ? " is-" + kind : "");
    card.status.textContent = text;
    card.statusFrom = text ? from || null : null;
  }

  function setBusy(buttons, busy) {
    buttons.forEach(function (button) {
      button.disabled = busy;
      if (busy) button.setAttribute("aria-busy", "true");
      else button.removeAttribute("aria-busy");
    });
  }

  function setCardBusy(card, busy) {
    card.busy = busy;
    setBusy([card.test, card.testSend], busy);
    if (busy) setBusy([card.save], true);
    else {
      card.save.removeAttribute("aria-busy");
      updateDirty(card);
    }
  }

  function saveChannel(card) {
    clearFieldErrors(card);
    closeTestConfirm(card);
    if (!isDirty(card)) {
      setCardStatus(card, "", "No changes to save.");
      return Promise.resolve();
    }
    var input = { channel: card.slug };
    if (card.apiKey.value !== "") input.apiKey = card.apiKey.value; // empty: keep the stored key
    if (card.itemId.value !== card.saved.itemId) input.itemId = card.itemId.value;
    if (card.orderId.value !== card.saved.orderId) input.orderId = card.orderId.value;
    setCardBusy(card, true);
    setCardStatus(card, "", "Saving…");
    return gql(UPDATE_MUTATION, { input: input })
      .then(function (data) {
        var result = data.updateChannelSettings;
        if (result.ok) {
          card.apiKey.value = "";
          applySettings(card, result.settings, { form: true });
          if (result.changed.length) {
            setCardStatus(card, "success", "Saved.");
            notify("success", "Settings saved", card.name + ": VTmarketing settings saved.");
          } else {
            setCardStatus(card, "", "No changes to save: these settings were already stored.");
          }
        } else {
          setCardStatus(card, "", "");
          showFieldErrors(card, result.errors); // next to the fields, and nowhere else
        }
      })
      .catch(function (error) {
        setCardStatus(card, "error", "Not saved: " + error.message);
      })
      .then(function () {
        setCardBusy(card, false);
      });
  }

  function toggleSending(card) {
    var wanted = card.enabled.checked;
    card.toggling = true;
    card.enabled.disabled = true;
    card.enabled.setAttribute("aria-busy", "true");
    setCardStatus(card, "", wanted ? "Turning sending on…" : "Turning sending off…");
    return gql(UPDATE_MUTATION, { input: { channel: card.slug, enabled: wanted } })
      .then(function (data) {
        var result = data.updateChannelSettings;
        card.toggling = false;
        if (result.ok) {
          applySettings(card, result.settings, { form: false });
          var text = result.settings.enabled
            ? "Sending is on: confirmed orders of this channel go to VTmarketing."
            : "Sending is off: orders of this channel are logged as skipped, not sent.";
          setCardStatus(card, "success", text);
          notify("success", "Settings saved", card.name + ": " + text);
        } else {
          card.enabled.checked = !wanted;
          setCardStatus(card, "error", result.errors.map(function (e) { return e.message; }).join(" "));
        }
      })
      .catch(function (error) {
        card.toggling = false;
        card.enabled.checked = !wanted;
        setCardStatus(card, "error", "Not changed: " + error.message);
      })
      .then(function () {
        card.enabled.removeAttribute("aria-busy");
        card.enabled.disabled = !card.configured;
      });
  }

  function openTestConfirm(card) {
    clearFieldErrors(card);
    var typed = card.apiKey.value.trim() !== "";
    card.testText.textContent =
      "A test event creates a test contact (" + TEST_EMAIL + ") and a test sale (an order named " +
      "saleor-vtmarketing-test-…, total 1) in the VTmarketing account of " +
      (typed ? "the pasted key" : "this channel's saved key") + ". It is not an order of your shop.";
    card.testConfirm.hidden = false;
    card.test.setAttribute("aria-expanded", "true");
    card.testSend.focus();
  }

  function closeTestConfirm(card) {
    card.testConfirm.hidden = true;
    card.test.setAttribute("aria-expanded", "false");
  }

  function sendTest(card) {
    clearFieldErrors(card);
    closeTestConfirm(card);
    var typed = card.apiKey.value.trim();
    setCardBusy(card, true);
    setCardStatus(card, "", typed ? "Testing the pasted key…" : "Sending a test event…");
    return gql(TEST_MUTATION, { channel: card.slug, apiKey: typed || null, currency: card.currency || null })
      .then(function (data) {
        var result = data.sendTestEvent;
        if (result.settings) applySettings(card, result.settings, { form: false });
        if (result.ok) {
          var text = result.message + (typed ? " Save to keep this key." : "");
          setCardStatus(card, "success", text, "test");
          notify("success", "Test event sent", card.name + ": " + text);
        } else if (!typed && result.code === "KEY_REJECTED") {
          setCardStatus(card, "", ""); // shown once: the key's status on the card says it
        } else {
          var fieldErrors = (result.errors || []).filter(function (e) { return e.field === "apiKey"; });
          if (fieldErrors.length) {
            setCardStatus(card, "", "");
            showFieldErrors(card, fieldErrors);
          } else {
            setCardStatus(card, "error", result.message, "test");
          }
        }
      })
      .catch(function (error) {
        setCardStatus(card, "error", "Test not sent: " + error.message);
      })
      .then(function () {
        setCardBusy(card, false);
      });
  }

  function applyStoredChannels(channels) {
    channels.forEach(function (stored) {
      if (stored.name) state.channelNames.set(stored.slug, stored.name);
      var card = state.cards.get(stored.slug);
      if (!card) return;
      renderCounts(card, stored.deliveryCounts);
      if (!card.busy) applySettings(card, stored.settings, { form: false });
    });
  }

  // --- the delivery log ---------------------------------------------------------------------------------------

  function deliveryVariables(first, after) {
    return {
      status: state.filters.status || null,
      channel: state.filters.channel || null,
      search: state.filters.search || null,
      first: first,
      after: after || null,
    };
  }

  /* mode: "replace" (first page, e.g. new filters) or "append" (Load more). */
  function loadDeliveries(mode) {
    if (mode === "replace") state.logGeneration += 1;
    var generation = state.logGeneration;
    $("log").setAttribute("aria-busy", "true");
    return gql(DELIVERIES_QUERY, deliveryVariables(PAGE_SIZE, mode === "append" ? state.endCursor : null))
      .then(function (data) {
        if (generation !== state.logGeneration) return;
        var page = data.deliveries;
        state.deliveries = mode === "append" ? state.deliveries.concat(page.items) : page.items;
        state.hasMore = page.hasMore;
        state.endCursor = page.endCursor;
        renderLog();
      })
      .catch(function (error) {
        showAlert("The delivery log could not be loaded: " + error.message);
      })
      .then(function () {
        $("log").removeAttribute("aria-busy");
      });
  }

  /* A poll's first page replaces what it covers; older pages the merchant loaded stay below it. */
  function mergePolled(page, size) {
    if (state.deliveries.length <= size || !page.hasMore) {
      state.deliveries = page.items;
      state.hasMore = page.hasMore;
      state.endCursor = page.endCursor;
      return;
    }
    var last = page.items.length ? Number(page.items[page.items.length - 1].id) : Infinity;
    var older = state.deliveries.filter(function (d) {
      return Number(d.id) < last;
    });
    state.deliveries = page.items.concat(older);
  }

  // --- live updates -------------------------------------------------------------------------------------------

  function startPolling() {
    if (state.poll.started) return;
    state.poll.started = true;
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible") pollNow(); // back on the tab: catch up at once
      else schedulePoll();
    });
    setLogStatus("live");
    schedulePoll();
  }

  function pollDelay() {
    if (state.poll.failures) return Math.min(MAX_BACKOFF_MS, POLL_MS * Math.pow(2, state.poll.failures));
    return document.visibilityState === "hidden" ? HIDDEN_POLL_MS : POLL_MS;
  }

  function schedulePoll(delay) {
    window.clearTimeout(state.poll.timer);
    var ms = delay === undefined ? pollDelay() : delay;
    $("log-status").setAttribute("data-next-poll-ms", String(ms));
    state.poll.timer = window.setTimeout(pollNow, ms);
  }

  function pollNow() {
    window.clearTimeout(state.poll.timer);
    if (state.poll.inFlight) {
      state.poll.again = true; // asked again while asking: ask once more right after
      return state.poll.inFlight;
    }
    var generation = state.logGeneration;
    var size = Math.min(MAX_POLL_SIZE, Math.max(PAGE_SIZE, state.deliveries.length));
    state.poll.count += 1;
    $("log-status").setAttribute("data-polls", String(state.poll.count));
    state.poll.inFlight = gql(POLL_QUERY, deliveryVariables(size, null))
      .then(function (data) {
        if (generation === state.logGeneration) {
          mergePolled(data.deliveries, size);
          renderLog();
        }
        applyStoredChannels(data.storedChannels);
        if (state.poll.failures) announce("The delivery log is up to date again.");
        state.poll.failures = 0;
        setLogStatus("live");
      })
      .catch(function (error) {
        state.poll.failures += 1;
        if (state.poll.failures === 1) announce("The delivery log is not updating right now.");
        setLogStatus(error.code === "TOKEN_EXPIRED" ? "waiting-token" : "retrying", error);
      })
      .then(function () {
        state.poll.inFlight = null;
        var again = state.poll.again;
        state.poll.again = false;
        schedulePoll(again ? 0 : undefined);
      });
    return state.poll.inFlight;
  }

  /* The one place a polling problem is shown: the line under the log's title. It never stops by itself. */
  function setLogStatus(kind, error) {
    var line = $("log-status");
    line.setAttribute("data-state", kind);
    line.className = "log-status is-" + kind;
    if (kind === "live") {
      line.textContent = "Updates by itself. Last checked " + clockFormat.format(new Date()) + ".";
    } else if (kind === "waiting-token") {
      line.textContent = "Waiting for the Saleor Dashboard to renew the session; the log updates again by itself.";
    } else {
      line.textContent = "Not updating right now (" + (error ? error.message : "no answer") + "). Trying again by itself.";
    }
  }

  var PLAIN_STATUS = {
    pending: "Waiting to be sent.",
    delivering: "Being sent now.",
    retrying: "Will be tried again.",
    delivered: "Accepted by VTmarketing.",
    failed: "Not delivered.",
    skipped: "Not sent.",
  };
  var SOURCES = { reconcile: "found by the missed-order check", backfill: "from a backfill" };

  /* Rows are keyed by delivery id: an unchanged row keeps its node (and whatever the merchant opened in it); a
   * changed row is rebuilt with its attempts list as open as it was. */
  function renderLog() {
    var body = $("log-body");
    var rows = new Map();
    state.deliveries.forEach(function (d, index) {
      var signature = JSON.stringify(d);
      var known = state.rows.get(d.id);
      var node = known && known.signature === signature ? known.node : deliveryRow(d);
      if (known && known.node !== node) keepOpen(known.node, node);
      rows.set(d.id, { node: node, signature: signature });
      if (body.children[index] !== node) body.insertBefore(node, body.children[index] || null);
    });
    state.rows.forEach(function (row, id) {
      if (!rows.has(id)) row.node.remove();
    });
    state.rows = rows;
    $("log-empty").hidden = state.deliveries.length > 0;
    $("log").parentNode.hidden = state.deliveries.length === 0;
    $("load-more").hidden = !state.hasMore;
  }

  function keepOpen(oldRow, newRow) {
    var was = oldRow.querySelector("details.attempts");
    var now = newRow.querySelector("details.attempts");
    if (was && now && was.open) now.open = true;
    if (oldRow.contains(document.activeElement)) {
      var focusable = newRow.querySelector(was && was.contains(document.activeElement) ? "summary" : "button");
      if (focusable) window.setTimeout(function () { focusable.focus(); }, 0);
    }
    oldRow.replaceWith(newRow);
  }

  function attemptItem(a) {
    var parts = [
      a.target === "saleor" ? "Saleor (order lines)" : "VTmarketing",
      a.httpStatus ? "HTTP " + a.httpStatus : "no answer",
      a.outcome,
      a.durationMs + " ms",
    ];
    return el("li", {}, [
      timeEl(a.startedAt),
      " · " + parts.join(" · "),
      a.excerpt ? el("span", { class: "excerpt", text: a.excerpt }) : null,
    ]);
  }

  function deliveryRow(d) {
    var label = d.orderNumber ? "#" + d.orderNumber : "Unreadable order";
    var orderCell = el("td", {}, [
      el("span", { class: "order-number", text: label }),
      SOURCES[d.source] ? el("span", { class: "sub", text: SOURCES[d.source] }) : null,
    ]);
    var name = d.channelName || state.channelNames.get(d.channel) || null;
    var channelCell = el("td", { class: "col-channel" }, [
      el("span", { text: name || d.channel || "" }),
      name && d.channel && name !== d.channel ? el("span", { class: "sub", text: d.channel }) : null,
    ]);
    var statusCell = el("td", {}, [
      el("span", { class: "badge badge-" + d.status, text: d.statusLabel }),
      d.nextAttemptAt ? el("span", { class: "sub next-try" }, ["Next try ", timeEl(d.nextAttemptAt)]) : null,
    ]);
    var receivedCell = el("td", { class: "col-received" }, [
      timeEl(d.receivedAt),
      d.resentAt ? el("span", { class: "sub resent" }, ["Resent ", timeEl(d.resentAt)]) : null,
    ]);
    var details = el("td", { class: "reason" }, [
      el("p", { class: d.status === "failed" ? "reason-failed" : "", text: d.reason || PLAIN_STATUS[d.status] || "" }),
      d.payloadWarning ? el("span", { class: "sub", text: "Saleor's payload warned: " + d.payloadWarning }) : null,
      d.attempts.length
        ? el("details", { class: "attempts" }, [
            el("summary", { text: plural(d.attempts.length, "attempt", "attempts") }),
            el("ol", {}, d.attempts.map(attemptItem)),
          ])
        : null,
      d.expiresAt ? el("span", { class: "sub" }, ["Kept until ", timeEl(d.expiresAt)]) : null,
    ]);
    var actions = el("td", { class: "col-actions" });
    if (d.canRetry) {
      var button = el("button", {
        type: "button",
        class: "btn btn-secondary btn-small",
        text: "Resend",
        "aria-label": "Resend order " + label,
      });
      button.addEventListener("click", function () {
        resend(d, button);
      });
      actions.append(button);
    }
    return el("tr", { "data-delivery-id": d.id, "data-status": d.status }, [
      orderCell,
      channelCell,
      statusCell,
      receivedCell,
      details,
      actions,
    ]);
  }

  function resend(delivery, button) {
    setBusy([button], true);
    var label = delivery.orderNumber ? "#" + delivery.orderNumber : "the order";
    return gql(RETRY_MUTATION, { id: delivery.id })
      .then(function (data) {
        var result = data.retryDelivery;
        if (!result.ok) {
          setBusy([button], false);
          showAlert(result.errors.map(function (e) { return e.message; }).join(" "));
          return pollNow();
        }
        announce("Order " + label + " will be sent again.");
        notify("info", "Resending", "Order " + label + " will be sent to VTmarketing again.");
        state.deliveries = state.deliveries.map(function (d) {
          return d.id === result.delivery.id ? result.delivery : d;
        });
        renderLog();
      })
      .catch(function (error) {
        setBusy([button], false);
        showAlert("Not resent: " + error.message);
      });
  }

  function resendAllFailed() {
    var button = $("retry-all");
    setBusy([button], true);
    return gql(RETRY_ALL_MUTATION, { channel: state.filters.channel || null })
      .then(function (data) {
        var result = data.retryFailedDeliveries;
        announce(result.message);
        notify(result.count ? "info" : "success", result.count ? "Resending" : "Nothing to resend", result.message);
        return pollNow();
      })
      .catch(function (error) {
        showAlert("Not resent: " + error.message);
      })
      .then(function () {
        setBusy([button], false);
      });
  }

  // --- start-up -----------------------------------------------------------------------------------------------

  function bindStaticControls() {
    $("filters").addEventListener("submit", function (event) {
      event.preventDefault();
      state.filters = {
        status: $("filter-status").value,
        channel: $("filter-channel").value,
        search: $("filter-search").value.trim(),
      };
      loadDeliveries("replace");
    });
    $("refresh").addEventListener("click", function () {
      pollNow();
    });
    $("retry-all").addEventListener("click", function () {
      resendAllFailed();
    });
    $("load-more").addEventListener("click", function () {
      loadDeliveries("append");
    });
  }

  function start() {
    applyTheme(params.get("theme"));
    bindStaticControls();
    if (!state.saleorApiUrl) {
      showOutside("This page was opened without the Saleor Dashboard, so it does not know which Saleor it belongs to.");
      return;
    }
    if (!inFrame()) {
      showOutside("This page was opened directly in the browser rather than inside the Saleor Dashboard.");
      return;
    }
    state.dashboardOrigin = referrerOrigin();
    if (!state.dashboardOrigin) {
      showOutside("The page could not tell which Saleor Dashboard opened it (no referrer).");
      return;
    }
    window.addEventListener("message", onMessage);
    postAction("notifyReady", {}); // once, here; never from the handshake handler
    state.handshakeTimer = window.setTimeout(function () {
      if (!state.token) showOutside("The Saleor Dashboard did not answer: no AppBridge handshake arrived.");
    }, HANDSHAKE_TIMEOUT_MS);
  }

  start();
})();
