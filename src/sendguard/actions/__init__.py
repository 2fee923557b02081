"""actions stage: carry out a verdict's edits (tag headers, To/Cc → Bcc) and reject replies.

`sendguard.pipeline` calls `apply_verdict` for pass/tag/rewrite (and the queue worker for a
released delay/hold) and `reject_reply` for rejects. Delay and hold are the queue's job.
"""

from sendguard.actions.reject import reject_reply
from sendguard.actions.rewrite import apply_verdict

__all__ = ["apply_verdict", "reject_reply"]
