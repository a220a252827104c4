"""A mailbox's own forwarding, as the Sieve script Dovecot runs at delivery (pure).

The guide's two options:
- "Delete after forwarding": no copy stays in the inbox (the redirects cancel the implicit
  keep); otherwise the inbox keeps the message as it arrived.
- "Keep original sender and recipients": the forwarded copy is untouched, so a reply goes to
  the original sender. Without it, the forwarded copy gets `Reply-To: <the mailbox>`, so a
  reply from the destination comes back to the mailbox.
"""

from __future__ import annotations


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def forwarding_script(
    *,
    address: str,
    destinations: list[str],
    delete_after_forwarding: bool,
    keep_original_sender: bool,
) -> str | None:
    """The script for this mailbox, or None when it forwards nowhere."""
    if not destinations:
        return None
    lines = [
        "# Written by Postdesk from the mailbox's forwarding settings; changes here are lost.",
        'require ["copy", "editheader"];',
    ]
    if not delete_after_forwarding:
        # Declared before the header edits, so the inbox copy stays as it arrived.
        lines.append("keep;")
    if not keep_original_sender:
        lines += ['deleteheader "Reply-To";', f'addheader "Reply-To" {_quoted(address)};']
    lines += [f"redirect :copy {_quoted(d)};" for d in destinations]
    if delete_after_forwarding:
        lines.append("discard;")
    return "\n".join(lines) + "\n"
