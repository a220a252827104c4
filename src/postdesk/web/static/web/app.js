/* The client area's behaviour: dialogs, copy buttons, tag lists, live password checks and
 * username feedback. No framework; htmx does the search. Works on content htmx swaps in. */
(function () {
  "use strict";

  function $(selector, root) { return (root || document).querySelector(selector); }
  function $all(selector, root) { return Array.prototype.slice.call((root || document).querySelectorAll(selector)); }

  // --- Dialogs ---------------------------------------------------------------------------
  document.addEventListener("click", function (event) {
    var opener = event.target.closest("[data-dialog-open]");
    if (opener) {
      var dialog = document.getElementById(opener.getAttribute("data-dialog-open"));
      if (dialog && !dialog.open) dialog.showModal();
      return;
    }
    var closer = event.target.closest("[data-dialog-close]");
    if (closer) {
      var own = closer.closest("dialog");
      if (own) own.close();
    }
  });

  // --- Copy buttons ----------------------------------------------------------------------
  function copyText(field) {
    var text = field.value !== undefined ? field.value : field.textContent;
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    field.select();
    document.execCommand("copy");
    return Promise.resolve();
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var field = document.getElementById(button.getAttribute("data-copy"));
    if (!field) return;
    var label = button.getAttribute("data-label") || button.textContent;
    button.setAttribute("data-label", label);
    copyText(field).then(function () {
      button.textContent = document.body.getAttribute("data-copied-text") + " ✓";
      setTimeout(function () { button.textContent = label; }, 2000);
    });
  });

  // --- Tag lists (aliases, destinations) ------------------------------------------------
  // An address as text with a line-break opportunity after its "@" and before each dot, as
  // the server writes it (web.address_breaks): it wraps there rather than mid-word.
  function appendBreakable(element, text) {
    text.split(/(?=\.)|(?<=@)/).forEach(function (part, index) {
      if (index) element.appendChild(document.createElement("wbr"));
      element.appendChild(document.createTextNode(part));
    });
  }

  function tagValues(root, name) {
    return $all("input[type=hidden][name='" + name + "']", root).map(function (i) { return i.value; });
  }

  function showTagFeedback(container, message) {
    var input = $("[data-tag-input]", container);
    var feedback = $("[data-tag-feedback]", container);
    if (feedback) feedback.textContent = message;
    input.setAttribute("aria-invalid", message ? "true" : "false");
  }

  // Each tag is checked as it is added, by the server's own rules (web:tag_check): a refused
  // one stays in the input with the error the save would give. Checks run one after the
  // other, so a tag typed while another is checked is neither lost nor reordered. Should the
  // check itself fail (offline), the tag is added and the save checks it.
  function addTag(container) {
    var value = $("[data-tag-input]", container).value.trim();
    if (!value) return;
    container._queue = (container._queue || Promise.resolve()).then(function () {
      return checkTag(container, value);
    }).catch(function () {});
  }

  function checkTag(container, value) {
    var name = container.getAttribute("data-name");
    var form = container.closest("form");
    var params = new URLSearchParams({ list: name, value: value });
    tagValues(container, name).forEach(function (v) { params.append("listed", v); });
    var ownName = form && (form.getAttribute("data-own-name") || ($("[data-own-name]", form) || {}).value);
    if (ownName) params.append("own", ownName);
    if (form && name === "destinations") {
      // A destination cannot be one of the mailbox's own addresses: its aliases neither.
      tagValues(form, "aliases").forEach(function (v) { params.append("own", v); });
    }
    if (form && form.getAttribute("data-mailbox")) params.append("mailbox", form.getAttribute("data-mailbox"));
    return fetch(container.getAttribute("data-check-url") + "?" + params.toString(), {
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    })
      .then(function (response) {
        if (!response.ok) throw new Error(response.status);
        return response.json();
      })
      .then(function (data) {
        if (data.ok) insertTag(container, data.value, value);
        else showTagFeedback(container, data.message);
      }, function () { insertTag(container, value, value); });
  }

  function insertTag(container, value, typed) {
    var input = $("[data-tag-input]", container);
    var name = container.getAttribute("data-name");
    var suffix = container.getAttribute("data-suffix") || "";
    showTagFeedback(container, "");
    var existing = tagValues(container, name).map(function (v) { return v.toLowerCase(); });
    if (existing.indexOf(value.toLowerCase()) === -1) {
      var item = document.createElement("li");
      item.className = "tag";
      var text = document.createElement("span");
      text.className = "tag__text";
      appendBreakable(text, value + suffix);
      var hidden = document.createElement("input");
      hidden.type = "hidden";
      hidden.name = name;
      hidden.value = value;
      var remove = document.createElement("button");
      remove.type = "button";
      remove.className = "tag__remove";
      remove.setAttribute("aria-label", container.getAttribute("data-remove-label") + " " + value + suffix);
      remove.textContent = "×";
      item.appendChild(text);
      item.appendChild(hidden);
      item.appendChild(remove);
      $(".tags__list", container).appendChild(item);
    }
    // Cleared unless something else was typed meanwhile.
    if (input.value.trim() === typed) input.value = "";
    input.focus();
  }

  function noteRemovedAliases(form) {
    var note = $("[data-reserved-note]", form);
    if (!note) return;
    var removed = form._removedAliases || [];
    note.hidden = removed.length === 0;
    note.textContent = removed.length ? form.getAttribute("data-reserved-text") + " (" + removed.join(", ") + ")" : "";
  }

  document.addEventListener("click", function (event) {
    var add = event.target.closest("[data-tag-add]");
    if (add) { addTag(add.closest("[data-tags]")); return; }
    var remove = event.target.closest(".tag__remove");
    if (remove) {
      var item = remove.closest(".tag");
      var container = remove.closest("[data-tags]");
      var form = remove.closest("form");
      if (item.hasAttribute("data-existing") && form) {
        form._removedAliases = (form._removedAliases || []).concat([$(".tag__text", item).textContent]);
        noteRemovedAliases(form);
      }
      item.remove();
      var input = $("[data-tag-input]", container);
      if (input) input.focus();
    }
  });

  document.addEventListener("input", function (event) {
    var input = event.target.closest("[data-tag-input]");
    if (input && input.getAttribute("aria-invalid") === "true") showTagFeedback(input.closest("[data-tags]"), "");
  });

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Enter") return;
    var input = event.target.closest("[data-tag-input]");
    if (!input) return;
    event.preventDefault();
    addTag(input.closest("[data-tags]"));
  });

  // --- Username: the rules of postdesk/mail/addresses.py, as you type --------------------
  document.addEventListener("input", function (event) {
    var input = event.target.closest("[data-local-part]");
    if (!input) return;
    var feedback = $("[data-local-part-feedback]", input.closest(".field"));
    var value = input.value.trim();
    var message = "";
    var bad = Array.from(value).filter(function (c) { return !/^[A-Za-z0-9._-]$/.test(c); })[0];
    if (bad !== undefined && /\s/.test(bad)) message = input.getAttribute("data-space");
    else if (bad !== undefined) message = input.getAttribute("data-bad-char").replace("{char}", bad);
    else if (value.startsWith(".") || value.endsWith(".")) message = input.getAttribute("data-dot-edge");
    else if (value.indexOf("..") !== -1) message = input.getAttribute("data-double-dot");
    feedback.textContent = message;
    input.setAttribute("aria-invalid", message ? "true" : "false");
    var dialog = $("[data-password-dialog]");
    if (dialog) updatePasswordDialog(dialog);
  });

  // --- Password dialog -------------------------------------------------------------------
  function dialogUsername(dialog) {
    var source = dialog.getAttribute("data-username-input");
    if (source) {
      var input = document.getElementById(source);
      return input ? input.value : "";
    }
    return dialog.getAttribute("data-username") || "";
  }

  function updatePasswordDialog(dialog) {
    var password = $("[data-password]", dialog).value;
    var confirmation = $("[data-password-confirmation]", dialog).value;
    var results = window.postdeskPasswordChecks(password, confirmation, {
      username: dialogUsername(dialog),
      domain: dialog.getAttribute("data-domain"),
      minLength: parseInt(dialog.getAttribute("data-min-length"), 10),
      special: dialog.getAttribute("data-special"),
    });
    var list = $("[data-password-checks]", dialog);
    // Every check is about what is typed: none is met before anything is.
    var typed = password !== "" || confirmation !== "";
    var allPassed = true;
    $all("[data-check]", list).forEach(function (item) {
      var passed = typed && !!results[item.getAttribute("data-check")];
      allPassed = allPassed && passed;
      item.classList.toggle("check--passed", passed);
      $(".check__state", item).textContent = list.getAttribute(passed ? "data-met" : "data-unmet");
    });
    $("[data-password-confirm]", dialog).disabled = !allPassed;
    return allPassed;
  }

  function setupPasswordDialog(dialog) {
    if (dialog._ready) return;
    dialog._ready = true;
    dialog.addEventListener("input", function () { updatePasswordDialog(dialog); });
    var toggle = $("[data-toggle-password]", dialog);
    toggle.addEventListener("click", function () {
      var show = toggle.getAttribute("aria-pressed") !== "true";
      toggle.setAttribute("aria-pressed", show ? "true" : "false");
      $("[data-password]", dialog).type = show ? "text" : "password";
      $("[data-password-confirmation]", dialog).type = show ? "text" : "password";
    });
    var generate = $("[data-generate-password]", dialog);
    generate.addEventListener("click", function () {
      var url = generate.getAttribute("data-url") + "?username=" + encodeURIComponent(dialogUsername(dialog));
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) { return response.json(); })
        .then(function (data) {
          $("[data-password]", dialog).value = data.password;
          $("[data-password-confirmation]", dialog).value = data.password;
          var generated = $("[data-generated]", dialog);
          generated.hidden = false;
          $("input", generated).value = data.password;
          updatePasswordDialog(dialog);
        });
    });
    var confirm = $("[data-password-confirm]", dialog);
    var passing = updatePasswordDialog(dialog);
    if (confirm.type === "button") {
      // Creating a mailbox: the fields belong to the page's form; the dialog only closes.
      var showSet = function () {
        var status = $("[data-password-status]");
        if (status) {
          status.textContent = status.getAttribute("data-set-text");
          status.classList.add("ok");
        }
      };
      confirm.addEventListener("click", function () {
        if (!updatePasswordDialog(dialog)) return;
        showSet();
        dialog.close();
      });
      // A refused form brings back the password set before: it still counts as set.
      if (passing) showSet();
    }
    if (dialog.hasAttribute("data-open-on-load")) dialog.showModal();
  }

  function setup(root) {
    $all("[data-password-dialog]", root).forEach(setupPasswordDialog);
    // Other dialogs asked for on arrival (the address list's "Delete" row action).
    $all("dialog[data-open-on-load]:not([data-password-dialog])", root).forEach(function (dialog) {
      if (!dialog.open) dialog.showModal();
    });
  }

  document.addEventListener("DOMContentLoaded", function () { setup(document); });
})();
