"""The forwarding script generated for a mailbox (pure)."""

from postdesk.dataplane.sieve import forwarding_script


def script(**options) -> str | None:
    defaults = {
        "address": "marie@example.com",
        "destinations": ["a@example.net", "b@example.org"],
        "delete_after_forwarding": False,
        "keep_original_sender": False,
    }
    return forwarding_script(**{**defaults, **options})


def test_no_destination_no_script():
    assert script(destinations=[]) is None


def test_default_keeps_a_copy_and_points_replies_at_the_mailbox():
    text = script()
    assert text.index("keep;") < text.index("addheader")  # the inbox copy stays untouched
    assert 'addheader "Reply-To" "marie@example.com";' in text
    assert 'redirect :copy "a@example.net";' in text
    assert 'redirect :copy "b@example.org";' in text
    assert "discard;" not in text


def test_delete_after_forwarding_keeps_nothing():
    text = script(delete_after_forwarding=True)
    assert "keep;" not in text
    assert text.rstrip().endswith("discard;")


def test_keep_original_sender_leaves_the_headers_alone():
    text = script(keep_original_sender=True)
    assert "Reply-To" not in text


def test_quotes_are_escaped():
    text = script(destinations=['"odd\\"@example.net'])
    assert 'redirect :copy "\\"odd\\\\\\"@example.net";' in text
