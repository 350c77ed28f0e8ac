/* VTmarketing settings page: plain JavaScript, no build step.
 *
 * AppBridge (the Saleor Dashboard's postMessage protocol), as Saleor's app SDK does it:
 * - `saleorApiUrl` and `id` come from the query string; messages are accepted only from the dashboard's origin
 *   (`document.referrer`'s origin) and from the parent window;
 * - `notifyReady` is sent ONCE at start-up. The dashboard answers every notifyReady with a handshake, so sending it
 *   from the handshake handler would loop;
 * - the token comes with `handshake` (possibly twice: the dashboard also sends one on iframe load, and may load the
 *   page twice) and is replaced by `tokenRefresh`; `theme` switches light/dark;
 * - saves and errors are reported with `notification` actions to window.parent (target "*", as the SDK does: the
 *   dashboard checks the sender's origin, and the payload holds nothing secret).
 *
 * Everything shown is built with textContent (never innerHTML), so text from Saleor or VTmarketing cannot inject markup.
 */
(function () {
  "use strict";

  var GRAPHQL_PATH = document.querySelector('meta[name="graphql-path"]').getAttribute("content");
  var HANDSHAKE_TIMEOUT_MS = 5000;
  var POLL_INTERVAL_MS = 2000;
  var MAX_POLLS = 60;
  var PAGE_SIZE = 25;
  var OPEN_STATUSES = ["pending", "retrying", "delivering"];

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
    filters: { status: "", channel: "", search: "" },
    deliveries: [],
    hasMore: false,
    endCursor: null,
    pollTimer: null,
    polls: 0,
  };

  // --- GraphQL documents --------------------------------------------------------------------------------------

  var COUNTS = "deliveryCounts { pending delivering retrying delivered failed skipped total }";
  var CHANNEL_FIELDS =
    "id slug name currencyCode isActive existsInSaleor enabled apiKeyHint itemId orderId configured " + COUNTS;
  var DELIVERY_FIELDS =
    "id orderNumber orderId channel status statusLabel reason source receivedAt nextAttemptAt finishedAt expiresAt " +
    "payloadWarning canRetry attempts { startedAt durationMs target httpStatus outcome excerpt }";
  var OVERVIEW_QUERY =
    "query Overview { installation { saleorApiUrl status statusReason lastReconcileAt lastReconcileChecked " +
    "lastReconcileRecovered lastReconcileError retentionDays } settingsOptions { itemIdChoices { value label } " +
    "orderIdChoices { value label } deliveryStatuses { value label } } channels { " + CHANNEL_FIELDS + " } " +
    "channelsError { code message } }";
  var CHANNELS_QUERY = "query Channels { channels { " + CHANNEL_FIELDS + " } channelsError { code message } }";
  var DELIVERIES_QUERY =
    "query Deliveries($status: String, $channel: String, $search: String, $first: Int, $after: String) { " +
    "deliveries(status: $status, channel: $channel, search: $search, first: $first, after: $after) { items { " +
    DELIVERY_FIELDS + " } hasMore endCursor } }";
  var UPDATE_MUTATION =
    "mutation Update($input: ChannelSettingsInput!) { updateChannelSettings(input: $input) { ok " +
    "settings { channel enabled apiKeyHint itemId orderId configured } errors { field code message } } }";
  var TEST_MUTATION =
    "mutation Test($channel: String!, $apiKey: String, $currency: String) { sendTestEvent(channel: $channel, " +
    "apiKey: $apiKey, currency: $currency) { ok httpStatus message code orderId errors { field code message } } }";
  var RETRY_MUTATION =
    "mutation Retry($id: ID!) { retryDelivery(id: $id) { ok delivery { " + DELIVERY_FIELDS + " } " +
    "errors { code message } } }";
  var RETRY_ALL_MUTATION =
    "mutation RetryAll($channel: String) { retryFailedDeliveries(channel: $channel) { ok count message } }";

  // --- small helpers ------------------------------------------------------------------------------------------

  function $(id) {
    return document.getElementById(id);
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

  var dateFormat = new Intl.DateTimeFormat(undefined, {
    month: "short",
    day: "numeric",
    year: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });

  function formatDate(iso) {
    if (!iso) return "";
    var date = new Date(iso);
    return isNaN(date.getTime()) ? iso : dateFormat.format(date);
  }

  function timeEl(iso) {
    return el("time", { datetime: iso, text: formatDate(iso) });
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
    }
    // response, redirect, localeChanged: nothing to do.
  }

  function receiveToken(token) {
    state.token = token;
    if (state.started) return; // a second handshake or a refresh: just keep the newer token
    state.started = true;
    window.clearTimeout(state.handshakeTimer);
    showMain();
    loadAll();
  }

  function applyTheme(theme) {
    if (theme !== "dark" && theme !== "light") return;
    document.documentElement.setAttribute("data-theme", theme);
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
    if (error && error.code === "TOKEN_EXPIRED") return "Your session has expired. Reload the page to continue.";
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

  function reportError(title, error) {
    var message = (error && error.message) || String(error);
    showAlert(message);
    notify("error", title, message);
  }

  // --- loading ------------------------------------------------------------------------------------------------

  function loadAll() {
    showAlert("");
    return gql(OVERVIEW_QUERY)
      .then(function (data) {
        state.options = data.settingsOptions;
        state.retentionDays = data.installation.retentionDays;
        renderInstallation(data.installation);
        renderFilterOptions(data.settingsOptions, data.channels);
        renderChannels(data.channels, data.channelsError);
        return loadDeliveries(false);
      })
      .catch(function (error) {
        $("channels-loading").hidden = true;
        reportError("VTmarketing settings could not be loaded", error);
      });
  }

  function renderInstallation(inst) {
    var parts = ["Connected to " + hostOf(inst.saleorApiUrl) + "."];
    if (inst.lastReconcileAt) {
      parts.push(
        "Last check for missed orders " + formatDate(inst.lastReconcileAt) + ": " +
          plural(inst.lastReconcileChecked, "order", "orders") + " checked, " +
          inst.lastReconcileRecovered + " recovered."
      );
    }
    if (inst.lastReconcileError) parts.push("Last check failed: " + inst.lastReconcileError);
    $("install-status").textContent = parts.join(" ");
    if (inst.status !== "active") {
      showAlert("The app is marked " + inst.status + (inst.statusReason ? ": " + inst.statusReason : "") + ".");
    }
    $("log-retention").textContent =
      "Newest first. Finished deliveries are kept for " + plural(inst.retentionDays, "day", "days") + ".";
  }

  function hostOf(url) {
    try {
      return new URL(url).host;
    } catch (e) {
      return url;
    }
  }

  function renderFilterOptions(options, channels) {
    var status = $("filter-status");
    options.deliveryStatuses.forEach(function (choice) {
      status.append(el("option", { value: choice.value, text: choice.label }));
    });
    var channel = $("filter-channel");
    channels.forEach(function (ch) {
      channel.append(el("option", { value: ch.slug, text: ch.name === ch.slug ? ch.slug : ch.name + " (" + ch.slug + ")" }));
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
    var card = { slug: ch.slug, name: ch.name, currency: ch.currencyCode, errors: {} };

    var badges = [];
    if (ch.existsInSaleor === false) badges.push(el("span", { class: "badge badge-warning", text: "Removed from Saleor" }));
    if (ch.isActive === false) badges.push(el("span", { class: "badge", text: "Inactive in Saleor" }));
    card.configuredBadge = el("span", { class: "badge" });

    card.enabled = el("input", { type: "checkbox", role: "switch", id: prefix + "-enabled", checked: ch.enabled });
    var header = el("div", { class: "card-header" }, [
      el("div", {}, [
        el("div", { class: "card-title" }, [el("h3", { id: prefix + "-title", text: ch.name })].concat(badges, [card.configuredBadge])),
        el("p", { class: "card-subtitle", text: [ch.slug, ch.currencyCode].filter(Boolean).join(" · ") }),
      ]),
      el("label", { class: "switch", for: prefix + "-enabled" }, [card.enabled, el("span", { text: "Send orders to VTmarketing" })]),
    ]);

    card.apiKey = el("input", {
      type: "password",
      id: prefix + "-apiKey",
      name: "apiKey",
      autocomplete: "off",
      spellcheck: "false",
      "aria-describedby": prefix + "-apiKey-hint " + prefix + "-apiKey-error",
    });
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

    card.save = el("button", { type: "submit", class: "btn btn-primary", text: "Save" });
    card.test = el("button", { type: "button", class: "btn btn-secondary", text: "Send test event" });
    card.status = el("p", { class: "card-status", role: "status", "aria-live": "polite" });

    var form = el("form", { class: "card-body", novalidate: true, "aria-labelledby": prefix + "-title" }, [
      el("div", { class: "channel-fields" }, [
        el("div", { class: "field" }, [
          el("label", { for: prefix + "-apiKey", text: "API key" }),
          card.apiKey,
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
      el("div", { class: "card-actions" }, [card.save, card.test, card.status]),
    ]);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      saveChannel(card);
    });
    card.test.addEventListener("click", function () {
      sendTest(card);
    });

    card.counts = el("div", { class: "card-footer", "aria-label": "Deliveries of " + ch.name });
    card.root = el("article", { class: "card channel", "data-channel": ch.slug, "aria-labelledby": prefix + "-title" }, [
      header,
      form,
      card.counts,
    ]);
    applySettings(card, ch);
    renderCounts(card, ch.deliveryCounts);
    // The channel's product feed lives in feed.js: it adds its own section to the card.
    if (window.VTMFeed) card.feed = window.VTMFeed.mount(card.root, ch, { gql: gql, notify: notify, el: el });
    return card;
  }

  function applySettings(card, settings) {
    card.enabled.checked = settings.enabled;
    card.itemId.value = settings.itemId;
    card.orderId.value = settings.orderId;
    card.configured = settings.configured;
    card.configuredBadge.textContent = settings.configured ? "Key saved" : "No key";
    card.configuredBadge.className = settings.configured ? "badge badge-delivered" : "badge badge-warning";
    card.apiKey.placeholder = settings.configured
      ? "Saved key " + (settings.apiKeyHint || "") + " (paste a new key to replace it)"
      : "Paste the VTmarketing API key";
    card.apiKeyHint.textContent = settings.configured
      ? "A key ending in " + (settings.apiKeyHint || "…") + " is saved. Leave empty to keep it."
      : "No key yet: orders of this channel are not sent until you save one.";
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

  function setCardStatus(card, kind, text) {
    card.status.className = "card-status" + (kind ? " is-" + kind : "");
    card.status.textContent = text;
  }

  function setBusy(buttons, busy) {
    buttons.forEach(function (button) {
      button.disabled = busy;
      if (busy) button.setAttribute("aria-busy", "true");
      else button.removeAttribute("aria-busy");
    });
  }

  function saveChannel(card) {
    clearFieldErrors(card);
    var input = { channel: card.slug, enabled: card.enabled.checked, itemId: card.itemId.value, orderId: card.orderId.value };
    if (card.apiKey.value !== "") input.apiKey = card.apiKey.value; // empty: keep the stored key
    setBusy([card.save, card.test], true);
    setCardStatus(card, "", "Saving…");
    return gql(UPDATE_MUTATION, { input: input })
      .then(function (data) {
        var result = data.updateChannelSettings;
        if (result.ok) {
          card.apiKey.value = "";
          applySettings(card, result.settings);
          setCardStatus(card, "success", "Saved.");
          notify("success", "Settings saved", card.name + ": VTmarketing settings saved.");
        } else {
          showFieldErrors(card, result.errors);
          setCardStatus(card, "error", "Not saved: check the highlighted fields.");
          notify("error", "Settings not saved", result.errors.map(function (e) { return e.message; }).join(" "));
        }
      })
      .catch(function (error) {
        setCardStatus(card, "error", "Not saved: " + error.message);
        notify("error", "Settings not saved", error.message);
      })
      .then(function () {
        setBusy([card.save, card.test], false);
      });
  }

  function sendTest(card) {
    clearFieldErrors(card);
    var typed = card.apiKey.value.trim();
    setBusy([card.save, card.test], true);
    setCardStatus(card, "", typed ? "Testing the pasted key…" : "Sending a test event…");
    return gql(TEST_MUTATION, { channel: card.slug, apiKey: typed || null, currency: card.currency || null })
      .then(function (data) {
        var result = data.sendTestEvent;
        if (result.ok) {
          var text = result.message + (typed ? " Save to keep this key." : "");
          setCardStatus(card, "success", text);
          notify("success", "Test event sent", card.name + ": " + text);
        } else {
          var fieldErrors = (result.errors || []).filter(function (e) { return e.field === "apiKey"; });
          if (fieldErrors.length) showFieldErrors(card, fieldErrors);
          setCardStatus(card, "error", result.message);
          notify("error", "Test event failed", card.name + ": " + result.message);
        }
      })
      .catch(function (error) {
        setCardStatus(card, "error", "Test not sent: " + error.message);
        notify("error", "Test event failed", error.message);
      })
      .then(function () {
        setBusy([card.save, card.test], false);
      });
  }

  function refreshChannelCounts() {
    return gql(CHANNELS_QUERY).then(function (data) {
      data.channels.forEach(function (ch) {
        var card = state.cards.get(ch.slug);
        if (card) renderCounts(card, ch.deliveryCounts);
      });
    });
  }

  // --- the delivery log ---------------------------------------------------------------------------------------

  function loadDeliveries(append, size) {
    var variables = {
      status: state.filters.status || null,
      channel: state.filters.channel || null,
      search: state.filters.search || null,
      first: size || PAGE_SIZE,
      after: append ? state.endCursor : null,
    };
    $("log").setAttribute("aria-busy", "true");
    return gql(DELIVERIES_QUERY, variables)
      .then(function (data) {
        var page = data.deliveries;
        state.deliveries = append ? state.deliveries.concat(page.items) : page.items;
        state.hasMore = page.hasMore;
        state.endCursor = page.endCursor;
        renderLog();
        schedulePoll();
      })
      .catch(function (error) {
        reportError("The delivery log could not be loaded", error);
      })
      .then(function () {
        $("log").removeAttribute("aria-busy");
      });
  }

  function refreshLog() {
    var size = Math.min(100, Math.max(PAGE_SIZE, state.deliveries.length));
    return Promise.all([loadDeliveries(false, size), refreshChannelCounts().catch(function () {})]);
  }

  function schedulePoll() {
    window.clearTimeout(state.pollTimer);
    var open = state.deliveries.some(function (d) {
      return OPEN_STATUSES.indexOf(d.status) !== -1;
    });
    if (!open || state.polls >= MAX_POLLS) return;
    state.polls += 1;
    state.pollTimer = window.setTimeout(refreshLog, POLL_INTERVAL_MS);
  }

  function startPolling() {
    state.polls = 0;
    schedulePoll();
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

  function renderLog() {
    var body = $("log-body");
    body.textContent = "";
    state.deliveries.forEach(function (d) {
      body.append(deliveryRow(d));
    });
    $("log-empty").hidden = state.deliveries.length > 0;
    $("log").parentNode.hidden = state.deliveries.length === 0;
    $("load-more").hidden = !state.hasMore;
  }

  function attemptItem(a) {
    var parts = [
      formatDate(a.startedAt),
      a.target === "saleor" ? "Saleor (order lines)" : "VTmarketing",
      a.httpStatus ? "HTTP " + a.httpStatus : "no answer",
      a.outcome,
      a.durationMs + " ms",
    ];
    return el("li", {}, [parts.join(" · "), a.excerpt ? el("span", { class: "excerpt", text: a.excerpt }) : null]);
  }

  function deliveryRow(d) {
    var label = d.orderNumber ? "#" + d.orderNumber : "Unreadable order";
    var orderCell = el("td", {}, [
      el("span", { class: "order-number", text: label }),
      SOURCES[d.source] ? el("span", { class: "sub", text: SOURCES[d.source] }) : null,
    ]);
    var statusCell = el("td", {}, [
      el("span", { class: "badge badge-" + d.status, text: d.statusLabel }),
      d.nextAttemptAt ? el("span", { class: "sub" }, ["Next try ", timeEl(d.nextAttemptAt)]) : null,
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
      el("td", { text: d.channel || "" }),
      statusCell,
      el("td", {}, [timeEl(d.receivedAt)]),
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
          var message = result.errors.map(function (e) { return e.message; }).join(" ");
          showAlert(message);
          notify("error", "Not resent", message);
          setBusy([button], false);
          return refreshLog();
        }
        announce("Order " + label + " will be sent again.");
        notify("info", "Resending", "Order " + label + " will be sent to VTmarketing again.");
        state.deliveries = state.deliveries.map(function (d) {
          return d.id === result.delivery.id ? result.delivery : d;
        });
        renderLog();
        startPolling();
      })
      .catch(function (error) {
        setBusy([button], false);
        reportError("Not resent", error);
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
        return refreshLog().then(startPolling);
      })
      .catch(function (error) {
        reportError("Not resent", error);
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
      loadDeliveries(false);
    });
    $("refresh").addEventListener("click", function () {
      refreshLog();
    });
    $("retry-all").addEventListener("click", function () {
      resendAllFailed();
    });
    $("load-more").addEventListener("click", function () {
      loadDeliveries(true);
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
