/* The seven password checks of postdesk/mail/passwords.py, mirrored for live feedback.
 * The server stays the authority: it checks again on save. Keep both in step:
 * tests/web/test_browser.py compares them on the same samples. */
(function (root) {
  "use strict";

  function codePoints(text) {
    return Array.from(text);
  }

  // Python's str.strip(): whitespace at both ends.
  function strip(text) {
    return text.replace(/^\s+|\s+$/g, "");
  }

  function domainFragments(domain) {
    // "example.com" -> ["example.com", "example"]
    var name = strip(domain).toLowerCase().replace(/\.+$/, "");
    if (!name) return [];
    return [name, name.split(".")[0]];
  }

  function passwordChecks(password, confirmation, options) {
    var minLength = options.minLength;
    var special = options.special;
    var lowered = password.toLowerCase();
    var username = strip(options.username || "").toLowerCase();
    var chars = codePoints(password);
    var fragments = domainFragments(options.domain || "");
    return {
      length: chars.length >= minLength,
      uppercase: chars.some(function (c) { return c >= "A" && c <= "Z"; }),
      digit: chars.some(function (c) { return c >= "0" && c <= "9"; }),
      special: chars.some(function (c) { return special.indexOf(c) !== -1; }),
      no_username: !username || lowered.indexOf(username) === -1,
      no_domain: !fragments.some(function (f) { return f && lowered.indexOf(f) !== -1; }),
      match: password === confirmation,
    };
  }

  root.postdeskPasswordChecks = passwordChecks;
})(window);
