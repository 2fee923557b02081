"""policy stage: admin-edited TOML → validated policy → one verdict per message.

schema (the language) → load (+ messages, checks, codes: readable refusals) → holder (the
serving policy, reloads) → evaluate (findings → `Verdict` with a full trace). The admin's
``sendguard policy explain|test`` live in `sendguard.usecases`, above inspect. The language
is documented in docs/policy.md.
"""
