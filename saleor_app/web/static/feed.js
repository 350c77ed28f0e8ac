/* The product feed section of each channel card, mounted by app.js (buildCard) through
 * window.VTMFeed.mount(cardElement, channel, api), where api holds app.js's gql(), notify() and el().
 *
 * Same rules as app.js: everything shown is built with textContent (never innerHTML), the settings API is the only
 * server it talks to, and nothing is saved until "Save feed" (like the channel's own Save).
 */
(function () {
  "use strict";

  var FEED_FIELDS =
    "channel enabled url productUrlTemplate colorAttribute brandAttribute refreshMinutes state stateText rows " +
    "builtAt buildSeconds lastError lastErrorAt nextBuildAt consistency { checkedOrders ordersWithMissingItems message }";
  var FEED_QUERY =
    "query Feed($channel: String!) { feed(channel: $channel) { " + FEED_FIELDS + " } " +
    "feedAttributes(channel: $channel) { items { slug name } error { code message } } }";
  var STATE_QUERY = "query FeedState($channel: String!) { feed(channel: $channel) { " + FEED_FIELDS + " } }";
  var UPDATE_MUTATION =
    "mutation UpdateFeed($input: FeedInput!) { updateFeed(input: $input) { ok feed { " + FEED_FIELDS + " } " +
    "errors { field code message } } }";
  var PREVIEW_QUERY =
    "query FeedPreview($channel: String!, $template: String!) { feedUrlPreview(channel: $channel, template: $template) " +
    "{ url productName error } }";
  var REBUILD_MUTATION =
    "mutation RebuildFeed($channel: String!) { rebuildFeed(channel: $channel) { ok feed { " + FEED_FIELDS + " } " +
    "errors { code message } } }";
  var ROTATE_MUTATION =
    "mutation RotateFeedUrl($channel: String!) { rotateFeedUrl(channel: $channel) { ok feed { " + FEED_FIELDS + " } " +
    "errors { code message } } }";

  var REFRESH_CHOICES = [
    [15, "Every 15 minutes"],
    [30, "Every 30 minutes"],
    [60, "Every hour"],
    [180, "Every 3 hours"],
    [360, "Every 6 hours"],
    [720, "Every 12 hours"],
    [1440, "Every day"],
  ];
  var STATE_BADGES = {
    off: ["Off", "badge"],
    waiting: ["Waiting for its first build", "badge badge-pending"],
    building: ["Building", "badge badge-delivering"],
    ready: ["Ready", "badge badge-delivered"],
    error: ["Last build failed", "badge badge-failed"],
  };
  var PREVIEW_DELAY_MS = 300;
  var POLL_INTERVAL_MS = 1500;
  var MAX_POLLS = 80;
  var counter = 0;

  var dateFormat = new Intl.DateTimeFormat(undefined, {
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });

  function formatDate(iso) {
    if (!iso) return "";
    var date = new Date(iso);
    return isNaN(date.getTime()) ? iso : dateFormat.format(date);
  }

  function mount(cardRoot, channel, api) {
    var el = api.el;
    var prefix = "feed" + counter++;
    var view = { channel: channel.slug, name: channel.name, feed: null, polls: 0, pollTimer: null, previewTimer: null };
    var errors = {};

    function errorLine(field) {
      errors[field] = el("p", { class: "field-error", id: prefix + "-" + field + "-error", hidden: true });
      return errors[field];
    }

    view.badge = el("span", { class: "badge", "data-feed-badge": "" });
    view.enabled = el("input", { type: "checkbox", role: "switch", id: prefix + "-enabled" });
    view.template = el("input", {
      type: "text",
      id: prefix + "-template",
      name: "productUrlTemplate",
      spellcheck: "false",
      autocomplete: "off",
      placeholder: "https://shop.example.com/products/{product_slug}?variant={variant_id}",
      "aria-describedby": prefix + "-template-hint " + prefix + "-preview " + prefix + "-productUrlTemplate-error",
    });
    view.preview = el("p", { class: "hint feed-preview", id: prefix + "-preview", role: "status", "aria-live": "polite" });
    view.color = el("select", { id: prefix + "-color", name: "colorAttribute" });
    view.brand = el("select", { id: prefix + "-brand", name: "brandAttribute" });
    view.attributesNote = el("p", { class: "hint", hidden: true });
    view.refresh = el(
      "select",
      { id: prefix + "-refresh", name: "refreshMinutes" },
      REFRESH_CHOICES.map(function (choice) {
        return el("option", { value: String(choice[0]), text: choice[1] });
      })
    );
    view.save = el("button", { type: "submit", class: "btn btn-primary", text: "Save feed" });
    view.status = el("p", { class: "card-status feed-status", role: "status", "aria-live": "polite" });

    view.url = el("input", { type: "text", readonly: true, id: prefix + "-url", class: "feed-url-input", spellcheck: "false" });
    view.copy = el("button", { type: "button", class: "btn btn-secondary", text: "Copy URL" });
    view.urlHint = el("p", { class: "hint", id: prefix + "-url-hint" });
    view.urlBlock = el("div", { class: "field feed-url", hidden: true }, [
      el("label", { for: prefix + "-url", text: "Feed URL (give it to VTmarketing)" }),
      el("div", { class: "feed-url-row" }, [view.url, view.copy]),
      view.urlHint,
    ]);

    view.facts = el("dl", { class: "feed-facts", hidden: true });
    view.consistency = el("p", { class: "feed-consistency", hidden: true });
    view.rebuild = el("button", { type: "button", class: "btn btn-secondary", text: "Rebuild now" });
    view.rotate = el("button", { type: "button", class: "btn btn-secondary", text: "New URL" });
    view.confirmRotate = el("button", { type: "button", class: "btn btn-primary", text: "Make a new URL" });
    view.cancelRotate = el("button", { type: "button", class: "btn btn-secondary", text: "Keep the current URL" });
    view.rotateConfirm = el("div", { class: "feed-confirm", role: "group", hidden: true }, [
      el("p", { text: "The current URL stops working at once: VTmarketing then needs the new one." }),
      el("div", { class: "button-row" }, [view.confirmRotate, view.cancelRotate]),
    ]);
    view.actions = el("div", { class: "button-row feed-actions", hidden: true }, [view.rebuild, view.rotate]);

    var form = el("form", { class: "feed-form", novalidate: true }, [
      el("div", { class: "feed-fields" }, [
        el("div", { class: "field feed-template" }, [
          el("label", { for: prefix + "-template", text: "Product URL template" }),
          view.template,
          el("p", {
            class: "hint",
            id: prefix + "-template-hint",
            text: "Your storefront's product page. Placeholders: {product_slug} {product_id} {variant_id} {sku} {channel}.",
          }),
          view.preview,
          errorLine("productUrlTemplate"),
        ]),
        el("div", { class: "field" }, [
          el("label", { for: prefix + "-color", text: "Colour attribute" }),
          view.color,
          errorLine("colorAttribute"),
        ]),
        el("div", { class: "field" }, [
          el("label", { for: prefix + "-brand", text: "Brand attribute" }),
          view.brand,
          errorLine("brandAttribute"),
        ]),
        el("div", { class: "field" }, [
          el("label", { for: prefix + "-refresh", text: "Refresh" }),
          view.refresh,
          errorLine("refreshMinutes"),
        ]),
      ]),
      view.attributesNote,
      errorLine("enabled"),
      errorLine("channel"),
      el("div", { class: "card-actions" }, [view.save, view.status]),
    ]);

    view.root = el("section", { class: "feed", "data-feed-state": "loading", "aria-labelledby": prefix + "-title" }, [
      el("div", { class: "feed-header" }, [
        el("div", {}, [
          el("div", { class: "card-title" }, [el("h4", { id: prefix + "-title", text: "Product feed" }), view.badge]),
          el("p", {
            class: "hint",
            text: "VTmarketing values each order with this feed's prices, by the same item IDs the events send.",
          }),
        ]),
        el("label", { class: "switch", for: prefix + "-enabled" }, [view.enabled, el("span", { text: "Serve a product feed" })]),
      ]),
      form,
      view.urlBlock,
      view.facts,
      view.consistency,
      view.actions,
      view.rotateConfirm,
    ]);

    var footer = cardRoot.querySelector(".card-footer");
    cardRoot.insertBefore(view.root, footer);

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      save();
    });
    view.template.addEventListener("input", schedulePreview);
    view.copy.addEventListener("click", copyUrl);
    view.url.addEventListener("focus", function () {
      view.url.select();
    });
    view.rebuild.addEventListener("click", rebuild);
    view.rotate.addEventListener("click", function () {
      view.rotateConfirm.hidden = false;
      view.rotate.disabled = true;
      view.confirmRotate.focus();
    });
    view.cancelRotate.addEventListener("click", closeConfirm);
    view.confirmRotate.addEventListener("click", rotate);

    load();

    // --- talking to the API ---------------------------------------------------------------------------------

    function load() {
      return api
        .gql(FEED_QUERY, { channel: view.channel })
        .then(function (data) {
          renderAttributes(data.feedAttributes, data.feed);
          render(data.feed, true);
          schedulePreview();
          if (data.feed.state === "building" || data.feed.state === "waiting") startPolling(data.feed.builtAt);
        })
        .catch(function (error) {
          setStatus("error", "The feed could not be loaded: " + error.message);
        });
    }

    function save() {
      clearErrors();
      var input = {
        channel: view.channel,
        enabled: view.enabled.checked,
        productUrlTemplate: view.template.value,
        colorAttribute: view.color.value,
        brandAttribute: view.brand.value,
        refreshMinutes: parseInt(view.refresh.value, 10),
      };
      busy([view.save], true);
      setStatus("", "Saving…");
      return api
        .gql(UPDATE_MUTATION, { input: input })
        .then(function (data) {
          var result = data.updateFeed;
          if (!result.ok) {
            showErrors(result.errors);
            setStatus("error", "Not saved: check the highlighted fields.");  // shown once, on the card (no toast)
            return;
          }
          render(result.feed, true);
          setStatus("success", result.feed.enabled ? "Saved. The feed is being built." : "Saved.");
          api.notify("success", "Feed saved", view.name + ": product feed settings saved.");
          if (result.feed.enabled) startPolling(result.feed.builtAt);
        })
        .catch(function (error) {
          setStatus("error", "Not saved: " + error.message);
        })
        .then(function () {
          busy([view.save], false);
        });
    }

    function schedulePreview() {
      window.clearTimeout(view.previewTimer);
      view.previewTimer = window.setTimeout(preview, PREVIEW_DELAY_MS);
    }

    function preview() {
      var template = view.template.value.trim();
      if (!template) {
        view.preview.textContent = "";
        view.preview.className = "hint feed-preview";
        return;
      }
      api
        .gql(PREVIEW_QUERY, { channel: view.channel, template: template })
        .then(function (data) {
          if (view.template.value.trim() !== template) return; // typed on since: a newer preview follows
          var result = data.feedUrlPreview;
          if (result.error) {
            view.preview.className = "hint feed-preview is-error";
            view.preview.textContent = result.error;
            return;
          }
          view.preview.className = "hint feed-preview";
          view.preview.textContent =
            (result.productName ? "Preview for " + result.productName + ": " : "Preview (example values): ") + result.url;
        })
        .catch(function () {
          view.preview.textContent = "";
        });
    }

    function rebuild() {
      busy([view.rebuild], true);
      setStatus("", "Asking for a rebuild…");
      var before = view.feed && view.feed.builtAt;
      return api
        .gql(REBUILD_MUTATION, { channel: view.channel })
        .then(function (data) {
          var result = data.rebuildFeed;
          if (!result.ok) {
            setStatus("error", result.errors.map(function (e) { return e.message; }).join(" "));
            return;
          }
          render(result.feed, false);
          setStatus("", "Rebuilding: the worker starts within seconds.");
          startPolling(before);
        })
        .catch(function (error) {
          setStatus("error", "Not rebuilt: " + error.message);
        })
        .then(function () {
          busy([view.rebuild], false);
        });
    }

    function rotate() {
      busy([view.confirmRotate, view.cancelRotate], true);
      return api
        .gql(ROTATE_MUTATION, { channel: view.channel })
        .then(function (data) {
          var result = data.rotateFeedUrl;
          if (!result.ok) {
            setStatus("error", result.errors.map(function (e) { return e.message; }).join(" "));
            return;
          }
          render(result.feed, false);
          setStatus("success", "New URL made: give it to VTmarketing. The old one no longer works.");
          api.notify("success", "New feed URL", view.name + ": the old feed URL no longer works.");
        })
        .catch(function (error) {
          setStatus("error", "No new URL: " + error.message);
        })
        .then(function () {
          busy([view.confirmRotate, view.cancelRotate], false);
          closeConfirm();
        });
    }

    function closeConfirm() {
      view.rotateConfirm.hidden = true;
      view.rotate.disabled = false;
    }

    function copyUrl() {
      var url = view.url.value;
      function copied() {
        setStatus("success", "Feed URL copied.");
      }
      function fallback() {
        view.url.focus();
        view.url.select();
        var ok = false;
        try {
          ok = document.execCommand("copy");
        } catch (e) {
          ok = false;
        }
        if (ok) copied();
        else setStatus("", "The URL is selected: press Ctrl+C (⌘C) to copy it.");
      }
      if (navigator.clipboard && typeof navigator.clipboard.writeText === "function") {
        navigator.clipboard.writeText(url).then(copied, fallback);
      } else {
        fallback();
      }
    }

    // A build runs on the worker: ask until it is done (bounded), as the delivery log does for open deliveries.
    function startPolling(builtBefore) {
      view.polls = 0;
      window.clearTimeout(view.pollTimer);
      view.pollTimer = window.setTimeout(function poll() {
        api
          .gql(STATE_QUERY, { channel: view.channel })
          .then(function (data) {
            var feed = data.feed;
            render(feed, false);
            var finished = feed.state === "error" || (feed.state === "ready" && feed.builtAt !== builtBefore);
            if (finished || !feed.enabled) {
              if (feed.state === "ready") setStatus("success", "Built: " + feed.rows + " rows.");
              if (feed.state === "error") setStatus("error", "The build failed: " + feed.lastError);
              return;
            }
            if (++view.polls < MAX_POLLS) view.pollTimer = window.setTimeout(poll, POLL_INTERVAL_MS);
          })
          .catch(function () {});
      }, POLL_INTERVAL_MS);
    }

    // --- rendering ------------------------------------------------------------------------------------------

    function renderAttributes(attributes, feed) {
      [
        [view.color, feed.colorAttribute],
        [view.brand, feed.brandAttribute],
      ].forEach(function (pair) {
        var select = pair[0];
        var chosen = pair[1] || "";
        select.textContent = "";
        select.append(el("option", { value: "", text: "None (leave the column empty)" }));
        var known = false;
        attributes.items.forEach(function (attribute) {
          known = known || attribute.slug === chosen;
          select.append(el("option", { value: attribute.slug, text: attribute.name + " (" + attribute.slug + ")" }));
        });
        if (chosen && !known) select.append(el("option", { value: chosen, text: chosen }));
        if (!feed.url && !chosen) chosen = suggested(attributes.items, select === view.color ? /^colou?r$/i : /^brand$/i);
        select.value = chosen;
      });
      view.attributesNote.hidden = !attributes.error;
      view.attributesNote.textContent = attributes.error ? attributes.error.message : "";
    }

    function suggested(items, pattern) {
      // A feed not set up yet: an attribute named like the column is the likely choice (saved only with the form).
      var match = items.filter(function (attribute) {
        return pattern.test(attribute.slug) || pattern.test(attribute.name);
      })[0];
      return match ? match.slug : "";
    }

    function render(feed, withForm) {
      view.feed = feed;
      view.root.setAttribute("data-feed-state", feed.state);
      var badge = STATE_BADGES[feed.state] || [feed.state, "badge"];
      view.badge.textContent = feed.state === "ready" ? feed.rows + " rows" : badge[0];
      view.badge.className = badge[1];
      if (withForm) {
        view.enabled.checked = feed.enabled;
        view.template.value = feed.productUrlTemplate || "";
        if (feed.url) {
          view.color.value = feed.colorAttribute || "";
          view.brand.value = feed.brandAttribute || "";
        }
        view.refresh.value = String(feed.refreshMinutes);
        if (view.refresh.value !== String(feed.refreshMinutes)) {
          view.refresh.append(el("option", { value: String(feed.refreshMinutes), text: "Every " + feed.refreshMinutes + " minutes" }));
          view.refresh.value = String(feed.refreshMinutes);
        }
      }
      view.urlBlock.hidden = !feed.url;
      view.url.value = feed.url || "";
      view.urlHint.textContent = feed.enabled
        ? "VTmarketing fetches it without signing in: keep it to yourself and VTmarketing."
        : "The feed is off: this URL answers 404 until you turn the feed on and save.";
      view.actions.hidden = !feed.url;
      view.rebuild.disabled = !feed.enabled;

      view.facts.textContent = "";
      var facts = [];
      if (feed.enabled || feed.builtAt) {
        facts.push(["Rows", feed.builtAt ? String(feed.rows) : "Not built yet"]);
        facts.push([
          "Last built",
          feed.builtAt ? formatDate(feed.builtAt) + " in " + Number(feed.buildSeconds || 0).toFixed(1) + " s" : "Never",
        ]);
        if (feed.enabled && feed.nextBuildAt) facts.push(["Next build", formatDate(feed.nextBuildAt)]);
      }
      if (feed.lastError) facts.push(["Last error", feed.lastError + (feed.builtAt ? " The previous feed is still served." : "")]);
      facts.forEach(function (pair) {
        view.facts.append(el("dt", { text: pair[0] }), el("dd", { class: pair[0] === "Last error" ? "reason-failed" : "", text: pair[1] }));
      });
      view.facts.hidden = facts.length === 0;
      view.consistency.hidden = !feed.consistency;
      view.consistency.textContent = feed.consistency ? feed.consistency.message : "";
      view.consistency.className =
        "feed-consistency" + (feed.consistency && feed.consistency.ordersWithMissingItems ? " is-warning" : "");
    }

    function setStatus(kind, text) {
      view.status.className = "card-status feed-status" + (kind ? " is-" + kind : "");
      view.status.textContent = text;
    }

    function busy(buttons, on) {
      buttons.forEach(function (button) {
        button.disabled = on;
        if (on) button.setAttribute("aria-busy", "true");
        else button.removeAttribute("aria-busy");
      });
    }

    function clearErrors() {
      Object.keys(errors).forEach(function (field) {
        errors[field].hidden = true;
        errors[field].textContent = "";
      });
      [view.template, view.color, view.brand, view.refresh, view.enabled].forEach(function (input) {
        input.removeAttribute("aria-invalid");
      });
    }

    function showErrors(list) {
      var inputs = {
        productUrlTemplate: view.template,
        colorAttribute: view.color,
        brandAttribute: view.brand,
        refreshMinutes: view.refresh,
        enabled: view.enabled,
      };
      var focused = false;
      list.forEach(function (error) {
        var field = errors[error.field] ? error.field : "channel";
        errors[field].textContent = error.message;
        errors[field].hidden = false;
        var input = inputs[field];
        if (input) {
          input.setAttribute("aria-invalid", "true");
          if (!focused) {
            input.focus();
            focused = true;
          }
        }
      });
    }

    return view;
  }

  window.VTMFeed = { mount: mount };
})();
