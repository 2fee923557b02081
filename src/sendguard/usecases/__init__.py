"""Use cases beside the CLI: what an admin runs against a message, outside the relay.

`explain` (``sendguard policy explain``: one message through inspect → verdict → the
rewrite a relay would apply, for people and machines) and `cases` (``sendguard policy
test``: a directory of messages with expected verdicts). They sit above `sendguard.inspect`
and `sendguard.actions`, which they run exactly as the relay does, and below `sendguard.cli`,
which only parses arguments and prints; the policy package stays the rule language alone.
"""
