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

  function addTag(container) {
    var input = $("[data-tag-input]", container);
    var value = input.value.trim();
    if (!value) return;
    var name = container.getAttribute("data-name");
    var suffix = container.getAttribute("data-suffix") || "";
    var existing = $all("input[type=hidden][name='" + name + "']", container).map(function (i) {
      return i.value.toLowerCase();
    });
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
    input.value = "";
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
    if (bad !== undefined) message = input.getAttribute("data-bad-char").replace("{char}", bad);
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
    var allPassed = true;
    $all("[data-check]", list).forEach(function (item) {
      var passed = !!results[item.getAttribute("data-check")];
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
    if (confirm.type === "button") {
      // Creating a mailbox: the fields belong to the page's form; the dialog only closes.
      confirm.addEventListener("click", function () {
        if (!updatePasswordDialog(dialog)) return;
        var status = $("[data-password-status]");
        if (status) {
          status.textContent = status.getAttribute("data-set-text");
          status.classList.add("ok");
        }
        dialog.close();
      });
    }
    updatePasswordDialog(dialog);
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
