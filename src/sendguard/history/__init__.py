"""Correspondent history: whom this organisation and each sender have written to.

Flow: delivered mail (live pass/tag/rewrite after a 2xx, released mail after delivery, or an
import of old sent mail) → `recorder.Recorder` (bounded queue, background writes) →
`store.HistoryStore` (tables ``history_*`` beside the queue's, same database) →
`lookup.History` (learned domains refreshed in the background; a small per-message
`HistorySnapshot` looked up after parsing) → the history detectors (`first-contact`,
`recipient-slip`, `thread-outsider`) and the learned targets of `lookalike-domain`.

Detectors never touch the store: they read the snapshot in their `DetectContext`, so they stay
pure and ``sendguard policy explain`` can feed them a snapshot from the store or a file.

The value types (`Delivery`, `HistorySnapshot`, `Known`) live in `sendguard.correspondence`,
below parse and detect, which name them; this package sits above the queue, whose database
it shares.
"""
